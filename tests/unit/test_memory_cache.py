"""The in-process cache refuses to go back in time, like the Redis one."""

from __future__ import annotations

from app.cache.base import ItemEntry
from app.cache.memory import MemoryCache
from app.domain.records import ItemView

T = "2026-01-01T00:00:00.000Z"


def view(sku: str, version: int = 1) -> ItemView:
    return ItemView(
        id="i", sku=sku, name=sku, description="", quantity=0, reserved=0, available=0, version=version,
        created_at=T, updated_at=T, low_stock_threshold=None, locations=[],
    )  # fmt: skip


async def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = MemoryCache(ttl_seconds=60)
    await cache.put_items([ItemEntry("i", 5, view("A", 5), "A")])
    await cache.put_items([ItemEntry("i", 4, view("A", 4), "A")])
    cached = await cache.get_item("i")
    assert cached is not None and cached.version == 5


async def test_a_tombstone_hides_the_item_and_frees_its_sku() -> None:
    cache = MemoryCache(ttl_seconds=60)
    await cache.put_items([ItemEntry("i", 1, view("A"), "A")])
    await cache.put_items([ItemEntry("i", 2, None)])
    cached = await cache.get_item("i")
    assert cached is not None and cached.deleted
    assert await cache.get_item_id("A") is None
    await cache.put_items([ItemEntry("i", 1, view("A"), "A")])  # a late fill cannot resurrect it
    cached = await cache.get_item("i")
    assert cached is not None and cached.deleted


async def test_it_is_bounded() -> None:
    cache = MemoryCache(ttl_seconds=60, max_items=10)
    await cache.put_items([ItemEntry(str(n), 1, view(str(n)), str(n)) for n in range(50)])
    assert await cache.get_item("0") is None and await cache.get_item("49") is not None
