"""Reads: cache first, SQLite (read-only) on a miss, and never an older version than known.

The cache can be behind in two ways: the listener has not refreshed it yet, or it lost
writes while it was away. ``FreshnessFloor`` remembers the newest version of each item seen on
the change feed; a cached copy older than that is treated as a miss.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from app.cache.base import CachedItem, CacheUnavailable, ItemCache, ItemEntry
from app.domain.views import ItemView, item_view
from app.metrics import CACHE_LOOKUPS, track_size
from app.reader import InventoryReader, ItemPage

log = logging.getLogger(__name__)

CACHE_RETRY_SECONDS = 1.0


class ItemNotFound(LookupError):
    pass


class FreshnessFloor:
    """The newest version known for each recently changed item (bounded)."""

    def __init__(self, max_items: int = 200_000) -> None:
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._max = max_items
        track_size("freshness_floor", max_items, lambda: len(self._versions))

    def raise_to(self, item_id: str, version: int) -> None:
        if self._versions.get(item_id, -1) < version:
            self._versions[item_id] = version
            self._versions.move_to_end(item_id)
            if len(self._versions) > self._max:
                self._versions.popitem(last=False)

    def allows(self, cached: CachedItem, item_id: str) -> bool:
        return cached.version >= self._versions.get(item_id, -1)


@dataclass
class CacheHealth:
    """Whether the shared cache answered lately; while it does not, reads go to SQLite."""

    ok: bool = True
    retry_at: float = 0.0

    def usable(self) -> bool:
        return self.ok or time.monotonic() >= self.retry_at

    def failed(self, exc: Exception) -> None:
        if self.ok:
            log.warning("cache unavailable, reading from SQLite: %s", exc)
        self.ok = False
        self.retry_at = time.monotonic() + CACHE_RETRY_SECONDS

    def succeeded(self) -> None:
        if not self.ok:
            log.info("cache is back")
        self.ok = True


class QueryService:
    def __init__(self, reader: InventoryReader, cache: ItemCache, floor: FreshnessFloor) -> None:
        self._reader = reader
        self._cache = cache
        self._floor = floor
        self.cache_health = CacheHealth()

    async def item(self, item_id: str) -> ItemView:
        cached = await self._cached(item_id)
        if cached is not None:
            CACHE_LOOKUPS.labels("hit").inc()
            if cached.item is None:
                raise ItemNotFound(item_id)
            return cached.item
        CACHE_LOOKUPS.labels("miss").inc()
        return await self._from_database(item_id)

    async def item_by_sku(self, sku: str) -> ItemView:
        item_id = await self._cached_id(sku)
        if item_id is not None:
            try:
                view = await self.item(item_id)
                if view["sku"] == sku:
                    return view
            except ItemNotFound:
                pass
        item_id = await self._reader.item_id_by_sku(sku)
        if item_id is None:
            raise ItemNotFound(sku)
        return await self.item(item_id)

    async def list_items(
        self, *, page: int, page_size: int, q: str | None, location: str | None, sort: str
    ) -> ItemPage:
        return await self._reader.list_items(page=page, page_size=page_size, q=q, location=location, sort=sort)

    async def history(self, item_id: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
        if await self._reader.item_state(item_id) is None:
            raise ItemNotFound(item_id)
        return await self._reader.history(item_id, limit=limit, before=before)

    # --- cache --------------------------------------------------------------------------

    async def _cached(self, item_id: str) -> CachedItem | None:
        if not self.cache_health.usable():
            return None
        try:
            cached = await self._cache.get_item(item_id)
        except CacheUnavailable as exc:
            self.cache_health.failed(exc)
            return None
        self.cache_health.succeeded()
        if cached is not None and not self._floor.allows(cached, item_id):
            CACHE_LOOKUPS.labels("stale").inc()
            return None
        return cached

    async def _cached_id(self, sku: str) -> str | None:
        if not self.cache_health.usable():
            return None
        try:
            return await self._cache.get_item_id(sku)
        except CacheUnavailable as exc:
            self.cache_health.failed(exc)
            return None

    async def _from_database(self, item_id: str) -> ItemView:
        snapshot = await self.read_snapshot(item_id)
        await self.fill_cache(snapshot)
        if snapshot.item is None:
            raise ItemNotFound(item_id)
        return snapshot.item

    async def read_snapshot(self, item_id: str) -> ItemEntry:
        """The item as SQLite has it now (a tombstone entry when deleted)."""
        item = await self._reader.item(item_id)
        if item is None:
            raise ItemNotFound(item_id)
        self._floor.raise_to(item_id, item.version)
        return ItemEntry(item.id, item.version, None if item.deleted else item_view(item), item.sku)

    async def fill_cache(self, snapshot: ItemEntry) -> None:
        """Put what we read into the cache. Guarded by version: if the listener stored something
        newer between our read and this write, the write does nothing."""
        if not self.cache_health.usable():
            return
        try:
            await self._cache.put_items([snapshot])
        except CacheUnavailable as exc:
            self.cache_health.failed(exc)

    def stock_view(self, view: ItemView) -> dict[str, Any]:
        keys = ("id", "sku", "quantity", "reserved", "available", "version", "updated_at", "locations")
        return {key: view[key] for key in keys}
