"""A reserve's change record does not grow with the number of stores an item is stocked in.

The levels are written and loaded the way the listener does it (``app/listener/store.py``:
``InventoryStore.write`` for the set-up, ``InventoryStore.load`` before the reserve), so a change
record that carried every level of the item, as it once did, makes these tests fail.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from app.domain.catalogue.stock import StockReservedData
from app.domain.events import Event, EventType, encode_event
from app.domain.records import encode_text, for_screens
from app.listener.planner import Planner
from app.listener.store import InventoryStore
from tests.support import events as builders

NOW = "2026-01-01T00:00:00.000Z"
LIMIT = 1024
DIGITS = 16


def stores(count: int) -> list[str]:
    return [f"S{n:03d}" for n in range(1, count + 1)]


async def _apply(store: InventoryStore, events: list[Event]) -> Planner:
    planner = Planner(await store.load(events), now=NOW, now_epoch=1000.0, orphan_wait=5.0)
    for event in events:
        planner.apply(event, encode_event(event))
    await store.write(planner.plan, expected_positions={})
    return planner


async def reserve_change_size(path: Path, store_count: int) -> tuple[int, int, int]:
    """The size in bytes of the ``item`` change record of one reserve at S001 as screens get it,
    how many levels the item has, and the record's size as stored and published (with what only
    replicas need: the history row, the level's alert state, the reservation's number), for an
    item delivered to ``store_count`` stores."""
    store = InventoryStore(path)
    await store.open()
    try:
        item_id = str(uuid.uuid4())
        await _apply(store, [builders.create(item_id, "CHAIN-1", quantity=100)])
        deliveries = [builders.adjust(item_id, 20, location=code) for code in stores(store_count)]
        await _apply(store, deliveries)
        reserve = builders.event(EventType.STOCK_RESERVED, item_id, StockReservedData(quantity=1), location="S001")
        planner = await _apply(store, [reserve])
        (change,) = planner.plan.item_changes()
        levels = builders.query(path, "SELECT COUNT(*) FROM stock_levels WHERE item_id = ?", (item_id,))[0][0]
        return len(encode_text(for_screens(change)).encode()), levels, len(encode_text(change).encode())
    finally:
        await store.close()


@pytest.fixture
def sizes(tmp_path: Path) -> dict[int, tuple[int, int, int]]:
    return {n: asyncio.run(reserve_change_size(tmp_path / f"chain-{n}.db", n)) for n in (2, 200)}


def test_a_reserve_change_record_is_the_same_size_at_2_and_at_200_stores(
    sizes: dict[int, tuple[int, int, int]],
) -> None:
    assert sizes[2][1] == 3 and sizes[200][1] == 201  # MAIN and every store: the item really is everywhere
    # Only the digits may differ: the item's version and chain totals are larger numbers after
    # 200 deliveries than after 2. One more level in the record would add far more than this.
    assert abs(sizes[2][0] - sizes[200][0]) <= DIGITS
    assert abs(sizes[2][2] - sizes[200][2]) <= 2 * DIGITS  # the history row repeats the totals


def test_a_reserve_change_record_is_under_1_kb_in_a_large_chain(sizes: dict[int, tuple[int, int, int]]) -> None:
    assert sizes[200][0] < LIMIT
    # What replicas need besides is one history row and a few numbers: under 2 KB on Kafka.
    assert sizes[200][2] < 2 * LIMIT
