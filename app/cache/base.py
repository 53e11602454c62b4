"""The read cache: item summaries, their levels one by one, and command outcomes; every write
guarded by version (the item's for its summary, each level's own for a level).

Two adapters: Redis (shared by every process) and an in-process dictionary (the embedded
default, and the fallback while Redis is away).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.domain.model import Item
from app.domain.records import Change, ItemChange, ItemSummary, LevelView, OutcomeChange
from app.domain.views import level_view, summary_view


class CacheUnavailable(RuntimeError):
    """The cache did not answer; callers go on without it."""


@dataclass(frozen=True)
class CachedItem:
    version: int
    item: ItemSummary | None  # None: a tombstone, the item is deleted

    @property
    def deleted(self) -> bool:
        return self.item is None


@dataclass(frozen=True)
class ItemEntry:
    """What to store for one item: its state at a version (item None when deleted)."""

    item_id: str
    version: int
    item: ItemSummary | None
    sku: str | None = None
    # Levels to store beside the summary, each kept only if newer than the cached one.
    levels: Sequence[LevelView] = ()


class ItemCache(Protocol):
    async def get_item(self, item_id: str) -> CachedItem | None: ...

    async def get_levels(self, item_id: str, locations: Sequence[str]) -> dict[str, LevelView]:
        """The cached levels among these locations (a missing one is read from SQLite)."""
        ...

    async def get_item_id(self, sku: str) -> str | None: ...

    async def put_items(self, entries: list[ItemEntry]) -> None:
        """Store each entry unless the cache already holds that item at the same or a newer version."""
        ...

    async def get_outcome(self, command_id: str) -> OutcomeChange | None: ...

    async def put_outcomes(self, outcomes: list[OutcomeChange]) -> None: ...

    async def ping(self) -> bool: ...

    async def server_id(self) -> str | None:
        """Changes when the cache server restarted (and may have lost or rewound data)."""
        ...

    async def close(self) -> None: ...


def entry_for(item: Item) -> ItemEntry:
    """What to cache of an item read from SQLite: its summary and the levels it was read with."""
    if item.deleted:
        return ItemEntry(item.id, item.version, None, item.sku)
    return ItemEntry(
        item.id, item.version, summary_view(item), item.sku, [level_view(lv) for lv in item.levels.values()]
    )


def item_entry(change: ItemChange) -> ItemEntry:
    item = change.item
    return ItemEntry(change.item_id, change.version, item, item.sku if item is not None else None, change.levels)


def entries_from_changes(changes: Iterable[Change]) -> tuple[list[ItemEntry], list[OutcomeChange]]:
    """Split change records into item entries and outcomes for the cache."""
    items: list[ItemEntry] = []
    outcomes: list[OutcomeChange] = []
    for change in changes:
        if isinstance(change, ItemChange):
            items.append(item_entry(change))
        else:
            outcomes.append(change)
    return items, outcomes
