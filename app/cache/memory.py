"""The in-process cache: a bounded dictionary with the same version guard as Redis."""

from __future__ import annotations

import time
from collections import OrderedDict

from app.cache.base import CachedItem, ItemEntry, ItemJson
from app.metrics import track_size

# Items are the read model's hot set; outcomes are only asked for shortly after their command
# (status polls, ``Prefer: wait``) and come from SQLite after that, so a few minutes' worth is
# plenty (10,000 is 90 s at 110 commands/s). Each outcome is ~1 KiB, so 100,000 of them were
# ~100 MiB of a process that only needed the newest.
MAX_ITEMS = 100_000
MAX_OUTCOMES = 10_000


class MemoryCache:
    def __init__(self, *, ttl_seconds: int, max_items: int = MAX_ITEMS, max_outcomes: int = MAX_OUTCOMES) -> None:
        self._ttl = ttl_seconds
        self._max_items = max_items
        self._max_outcomes = max_outcomes
        self._items: OrderedDict[str, tuple[float, CachedItem]] = OrderedDict()
        self._skus: dict[str, str] = {}
        self._outcomes: OrderedDict[str, ItemJson] = OrderedDict()
        track_size("cache_items", max_items, lambda: len(self._items))
        track_size("cache_skus", max_items, lambda: len(self._skus))  # at most one per cached item
        track_size("cache_outcomes", max_outcomes, lambda: len(self._outcomes))

    async def get_item(self, item_id: str) -> CachedItem | None:
        entry = self._items.get(item_id)
        if entry is None:
            return None
        expires, cached = entry
        if expires < time.monotonic():
            # Expired like a Redis key: the next read falls back to SQLite.
            del self._items[item_id]
            return None
        return cached

    async def get_item_id(self, sku: str) -> str | None:
        return self._skus.get(sku)

    async def put_items(self, entries: list[ItemEntry]) -> None:
        expires = time.monotonic() + self._ttl
        for entry in entries:
            current = self._items.get(entry.item_id)
            if current is not None and current[1].version >= entry.version:
                continue
            if current is not None and current[1].item is not None:
                old_sku = current[1].item["sku"]
                if self._skus.get(old_sku) == entry.item_id:
                    del self._skus[old_sku]
            self._items[entry.item_id] = (expires, CachedItem(entry.version, entry.item))
            self._items.move_to_end(entry.item_id)
            if entry.item is not None and entry.sku:
                self._skus[entry.sku] = entry.item_id
        while len(self._items) > self._max_items:
            item_id, (_, cached) = self._items.popitem(last=False)
            if cached.item is not None and self._skus.get(cached.item["sku"]) == item_id:
                del self._skus[cached.item["sku"]]

    async def get_outcome(self, command_id: str) -> ItemJson | None:
        return self._outcomes.get(command_id)

    async def put_outcomes(self, outcomes: list[ItemJson]) -> None:
        for outcome in outcomes:
            self._outcomes[outcome["command_id"]] = outcome
        while len(self._outcomes) > self._max_outcomes:
            self._outcomes.popitem(last=False)

    async def ping(self) -> bool:
        return True

    async def server_id(self) -> str | None:
        return "memory"

    async def close(self) -> None:
        return None
