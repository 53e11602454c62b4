"""The in-process cache: a bounded dictionary with the same version guard as Redis."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from app.cache.base import CachedItem, ItemEntry
from app.domain.records import LevelView, OutcomeChange
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
        # item id -> (expiry, what is cached, the SKU it holds in _skus or None)
        self._items: OrderedDict[str, tuple[float, CachedItem, str | None]] = OrderedDict()
        # item id -> its cached levels by location (bounded with _items: dropped together)
        self._levels: dict[str, dict[str, LevelView]] = {}
        self._skus: dict[str, str] = {}
        self._outcomes: OrderedDict[str, OutcomeChange] = OrderedDict()
        track_size("cache_items", max_items, lambda: len(self._items))
        track_size("cache_skus", max_items, lambda: len(self._skus))  # at most one per cached item
        track_size("cache_outcomes", max_outcomes, lambda: len(self._outcomes))

    async def get_item(self, item_id: str) -> CachedItem | None:
        entry = self._items.get(item_id)
        if entry is None:
            return None
        expires, cached, _ = entry
        if expires < time.monotonic():
            # Expired like a Redis key: the next read falls back to SQLite.
            del self._items[item_id]
            self._levels.pop(item_id, None)
            return None
        return cached

    async def get_levels(self, item_id: str, locations: Sequence[str]) -> dict[str, LevelView]:
        levels = self._levels.get(item_id)
        if not levels or item_id not in self._items:
            return {}
        return {code: levels[code] for code in locations if code in levels}

    async def get_item_id(self, sku: str) -> str | None:
        return self._skus.get(sku)

    async def put_items(self, entries: list[ItemEntry]) -> None:
        expires = time.monotonic() + self._ttl
        for entry in entries:
            current = self._items.get(entry.item_id)
            if current is None or current[1].version < entry.version:
                if current is not None:
                    self._forget_sku(entry.item_id, current[2])
                sku = entry.sku if entry.item is not None and entry.sku else None
                self._items[entry.item_id] = (expires, CachedItem(entry.version, entry.item), sku)
                self._items.move_to_end(entry.item_id)
                if sku is not None:
                    self._skus[sku] = entry.item_id
            if entry.levels and entry.item_id in self._items:
                levels = self._levels.setdefault(entry.item_id, {})
                for level in entry.levels:
                    cached = levels.get(level.location)
                    if cached is None or cached.version < level.version:
                        levels[level.location] = level
        while len(self._items) > self._max_items:
            item_id, (_, _, sku) = self._items.popitem(last=False)
            self._levels.pop(item_id, None)
            self._forget_sku(item_id, sku)

    def _forget_sku(self, item_id: str, sku: str | None) -> None:
        if sku is not None and self._skus.get(sku) == item_id:
            del self._skus[sku]

    async def get_outcome(self, command_id: str) -> OutcomeChange | None:
        return self._outcomes.get(command_id)

    async def put_outcomes(self, outcomes: list[OutcomeChange]) -> None:
        for outcome in outcomes:
            self._outcomes[outcome.command_id] = outcome
        while len(self._outcomes) > self._max_outcomes:
            self._outcomes.popitem(last=False)

    async def ping(self) -> bool:
        return True

    async def server_id(self) -> str | None:
        return "memory"

    async def close(self) -> None:
        return None
