"""The read cache: item snapshots and command outcomes, every write guarded by version.

Two adapters: Redis (shared by every process) and an in-process dictionary (the embedded
default, and the fallback while Redis is away).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from app.domain.records import Change, ItemChange, ItemView, OutcomeChange


class CacheUnavailable(RuntimeError):
    """The cache did not answer; callers go on without it."""


@dataclass(frozen=True)
class CachedItem:
    version: int
    item: ItemView | None  # None: a tombstone, the item is deleted

    @property
    def deleted(self) -> bool:
        return self.item is None


@dataclass(frozen=True)
class ItemEntry:
    """What to store for one item: its state at a version (item None when deleted)."""

    item_id: str
    version: int
    item: ItemView | None
    sku: str | None = None


class ItemCache(Protocol):
    async def get_item(self, item_id: str) -> CachedItem | None: ...

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


def item_entry(change: ItemChange) -> ItemEntry:
    item = change.item
    return ItemEntry(change.item_id, change.version, item, item.sku if item is not None else None)


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
