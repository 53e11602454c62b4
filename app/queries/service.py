"""Reads: cache first, SQLite (read-only) on a miss, and never an older version than known.

The cache can be behind in two ways: the listener has not refreshed it yet, or it lost
writes while it was away. ``FreshnessFloor`` remembers the newest version of each item seen on
the change feed; a cached copy older than that is treated as a miss.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

import msgspec

from app.cache.base import CachedItem, CacheUnavailable, ItemCache, ItemEntry, entry_for
from app.domain.audit import AuditEntry, AuditFilters, Cursor, item_reference, merge_page
from app.domain.low_stock import LowStockRow, low_row
from app.domain.records import (
    HistoryEntry,
    ItemSummary,
    ItemView,
    LevelView,
    ReservationView,
    StockView,
    TransferView,
)
from app.domain.views import item_view, stock_view, summary_view, with_levels
from app.metrics import CACHE_LOOKUPS, track_size
from app.reader import AuditWhere, InventoryReader, ItemPage, LowLevel, WallPage

log = logging.getLogger(__name__)

CACHE_RETRY_SECONDS = 1.0


class ItemNotFound(LookupError):
    pass


Row = TypeVar("Row")
# The open reservations and transfers an item page lists.
OPEN_ROWS = 50


@dataclass(frozen=True)
class RecordPage(Generic[Row]):
    """A page of transfers or reservations, newest first."""

    rows: list[Row]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class ItemDetail:
    """What the item page shows: the item (as it was, when deleted) with one page of its levels,
    and its latest history."""

    item: ItemView
    deleted: bool
    history: list[HistoryEntry]
    levels: LevelPage
    # Open ones only: what is held and what is on its way.
    reservations: list[ReservationView] = field(default_factory=list)
    transfers: list[TransferView] = field(default_factory=list)


@dataclass(frozen=True)
class LevelPage:
    """One page of an item's levels, by location."""

    levels: list[LevelView]
    total: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return max(1, (self.total + self.page_size - 1) // self.page_size)


class FreshnessFloor:
    """The newest version known for each recently changed item (bounded)."""

    def __init__(self, max_items: int = 200_000) -> None:
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._max = max_items
        # Told of every item a newer version is known of (the held answers, app/queries/answer_cache.py).
        self._watchers: list[Callable[[str], None]] = []
        track_size("freshness_floor", max_items, lambda: len(self._versions))

    def watch(self, newer: Callable[[str], None]) -> None:
        self._watchers.append(newer)

    def raise_to(self, item_id: str, version: int) -> None:
        if self._versions.get(item_id, -1) < version:
            self._versions[item_id] = version
            self._versions.move_to_end(item_id)
            for newer in self._watchers:
                newer(item_id)
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

    async def item(self, item_id: str, locations: Sequence[str] | None = None) -> ItemView:
        """The item with its levels at ``locations`` (every level when None); its totals stay the
        chain's.

        With locations: the summary and those levels cache-first, the missing levels (or all of
        it, when the cached summary is missing or older than the floor) from SQLite. Cached levels
        are used only beside a cached summary the floor allows: the listener writes an item's
        summary and the levels a batch changed together, so such a summary vouches for them.
        Without locations: one read of the item and all its levels from SQLite (a range of the
        primary key), since the cache cannot tell which locations an item has."""
        if locations is None:
            # Not a cache lookup: counting it as a miss would hide the hit rate of the reads that are.
            return await self._from_database(item_id, None)
        cached = await self._cached(item_id)
        if cached is None:
            CACHE_LOOKUPS.labels("miss").inc()
            return await self._from_database(item_id, locations)
        CACHE_LOOKUPS.labels("hit").inc()
        if cached.item is None:
            raise ItemNotFound(item_id)
        levels = await self._cached_levels(item_id, locations)
        missing = [code for code in locations if code not in levels]
        if missing:
            stored = await self._reader.item_at(item_id, missing)
            if stored is None or stored.version != cached.item.version:
                # SQLite moved on since the cached summary: answer what it has now, all of it.
                return await self._from_database(item_id, locations)
            await self.fill_cache(entry_for(stored))
            levels.update({level.location: level for level in item_view(stored).locations})
        return with_levels(cached.item, list(levels.values()))

    async def item_by_sku(self, sku: str, locations: Sequence[str] | None = None) -> ItemView:
        item_id = await self._cached_id(sku)
        if item_id is not None:
            try:
                view = await self.item(item_id, locations)
                if view.sku == sku:
                    return view
            except ItemNotFound:
                pass
        item_id = await self._reader.item_id_by_sku(sku)
        if item_id is None:
            raise ItemNotFound(sku)
        return await self.item(item_id, locations)

    async def level_page(self, item_id: str, *, page: int, page_size: int) -> LevelPage:
        """One page of a live item's levels, from SQLite (a range of the primary key)."""
        if await self._reader.item_state(item_id) != "live":
            raise ItemNotFound(item_id)
        levels, total = await self._reader.level_page(item_id, page=page, page_size=page_size)
        return LevelPage(levels, total, page, page_size)

    async def list_items(
        self, *, page: int, page_size: int, q: str | None, location: str | None, sort: str
    ) -> ItemPage:
        return await self._reader.list_items(page=page, page_size=page_size, q=q, location=location, sort=sort)

    async def wall_page(
        self,
        locations: Sequence[str],
        *,
        attention_only: bool,
        default_threshold: int,
        page: int,
        page_size: int,
        sku_prefix: str = "",
    ) -> WallPage:
        """One screen of a stock wall, from SQLite: the order is over every level of the wall's
        stores, which no cache holds. A page past the end (the wall shrank while it rotated) is
        page 1."""
        found = await self._reader.wall_page(
            locations, attention_only=attention_only, default_threshold=default_threshold, page=page,
            page_size=page_size, sku_prefix=sku_prefix,
        )  # fmt: skip
        if page > found.total_pages:
            return await self._reader.wall_page(
                locations, attention_only=attention_only, default_threshold=default_threshold, page=1,
                page_size=page_size, sku_prefix=sku_prefix,
            )  # fmt: skip
        return found

    async def item_detail(
        self, item_id: str, *, history_rows: int, levels_page: int = 1, levels_page_size: int = 50
    ) -> ItemDetail:
        """The item's summary cache-first like ``item`` with one page of its levels (so the page
        costs the same at 5 or 500 stores); a deleted one as SQLite keeps it (its row and
        history stay), since the page still shows what it was."""
        levels, total = await self._reader.level_page(item_id, page=levels_page, page_size=levels_page_size)
        try:
            view = msgspec.structs.replace(await self.item(item_id, ()), locations=levels)
            deleted = False
        except ItemNotFound:
            stored = await self._reader.item_at(item_id, ())
            if stored is None:
                raise
            view, deleted = with_levels(summary_view(stored), levels), stored.deleted
        history = await self._reader.history(item_id, limit=history_rows, before=None)
        page = LevelPage(levels, total, levels_page, levels_page_size)
        reservations, _ = await self._reader.reservations(item_id=item_id, state="open", page_size=OPEN_ROWS)
        transfers, _ = await self._reader.transfers(item_id=item_id, state="in_transit", page_size=OPEN_ROWS)
        return ItemDetail(view, deleted, history, page, reservations, transfers)

    async def transfers(
        self, *, item_id: str | None, location: str | None, state: str | None, page: int, page_size: int
    ) -> RecordPage[TransferView]:
        rows, total = await self._reader.transfers(
            item_id=item_id, location=location, state=state, page=page, page_size=page_size
        )
        return RecordPage(rows, total, page, page_size)

    async def reservations(
        self,
        *,
        item_id: str | None,
        location: str | None,
        reference: str | None,
        state: str | None,
        page: int,
        page_size: int,
    ) -> RecordPage[ReservationView]:
        rows, total = await self._reader.reservations(
            item_id=item_id, location=location, reference=reference, state=state, page=page, page_size=page_size
        )
        return RecordPage(rows, total, page, page_size)

    async def history(self, item_id: str, *, limit: int, before: int | None) -> list[HistoryEntry]:
        if await self._reader.item_state(item_id) is None:
            raise ItemNotFound(item_id)
        return await self._reader.history(item_id, limit=limit, before=before)

    # --- the audit log and low stock across the chain ----------------------------------------

    async def audit_page(self, filters: AuditFilters, cursor: Cursor, limit: int) -> AuditPage:
        """A page of the audit log, newest first, and the cursor of the next one. Each source is
        read with one row more than the page, so the merge knows whether it goes on."""
        resolved = await self.resolve_audit_item(filters)
        if resolved is None:
            return AuditPage([], None, filters, unknown_item=True)
        where = _audit_where(resolved)
        applied: list[AuditEntry] = []
        rejected: list[AuditEntry] = []
        if resolved.kind != "rejected":
            applied = await self._reader.audit_applied(
                where, before=cursor.history_before, limit=limit + 1, item_id=resolved.item_id
            )
        if resolved.kind != "applied":
            rejected = await self._reader.audit_rejected(
                where, before=cursor.rejected_before, limit=limit + 1, item_id=resolved.item_id
            )
        entries, next_cursor = merge_page(applied, rejected, cursor, limit)
        return AuditPage(entries, next_cursor, resolved)

    async def audit_batches(self, filters: AuditFilters, batch: int = 1000) -> AsyncIterator[list[AuditEntry]]:
        """The whole (filtered) log in pages of ``batch``, for an export: one bounded read at a
        time along the indexes, whatever the size of the log."""
        cursor: Cursor | None = Cursor()
        while cursor is not None:
            page = await self.audit_page(filters, cursor, batch)
            if page.entries:
                yield page.entries
            cursor = page.next_cursor

    async def resolve_audit_item(self, filters: AuditFilters) -> AuditFilters | None:
        """The filters with the item they name by id (an id as is, a SKU looked up); None when
        the SKU names no item, so the log is empty rather than unfiltered."""
        if filters.item is None:
            return filters
        item_id, sku = item_reference(filters.item)
        if item_id is None:
            item_id = await self._reader.item_id_of_sku(sku)
            if item_id is None:
                return None
        return replace(filters, item_id=item_id)

    async def audit_after(self, item_id: str, after: int) -> list[AuditEntry]:
        """What the history of an item gained after ``after`` (a live page's newest entries)."""
        return await self._reader.audit_applied_of_item(item_id, after=after)

    async def audit_rejection(self, command_id: str) -> AuditEntry | None:
        return await self._reader.audit_rejection(command_id)

    async def last_history_id(self) -> int:
        return await self._reader.last_history_id()

    async def low_stock(
        self, *, locations: Sequence[str] | None, default_threshold: int, page: int, page_size: int
    ) -> LowStockPage:
        """A page of the levels low or out at these locations, most urgent first, each with the
        best other store to ask: one more statement for the whole page (by primary key)."""
        levels, total = await self._reader.low_levels(
            locations=locations, default_threshold=default_threshold, limit=page_size, offset=(page - 1) * page_size
        )
        ranked = await self._reader.best_sources(sorted({level.item_id for level in levels}))
        rows = [
            row
            for level in levels
            if (row := _low_row(level, default_threshold, ranked.get(level.item_id, []))) is not None
        ]
        return LowStockPage(rows, total, page, page_size)

    async def low_stock_rows_of_item(
        self, item: ItemSummary, locations: Collection[str], default_threshold: int
    ) -> list[LowStockRow]:
        """An item's levels low or out at these locations as the low-stock page shows them, from
        one read of all its levels (which also ranks the stores to ask)."""
        levels = await self._reader.levels_of_item(item.id)
        ranked = sorted(((level.location, level.available) for level in levels), key=lambda pair: (-pair[1], pair[0]))
        rows = [
            low_row(
                item_id=item.id, sku=item.sku, name=item.name, threshold=item.low_stock_threshold,
                location=level.location, quantity=level.quantity, reserved=level.reserved,
                updated_at=level.updated_at, default_threshold=default_threshold, ranked=ranked[:2],
            )
            for level in levels
            if level.location in locations
        ]  # fmt: skip
        return [row for row in rows if row is not None]

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

    async def _cached_levels(self, item_id: str, locations: Sequence[str]) -> dict[str, LevelView]:
        if not locations or not self.cache_health.usable():
            return {}
        try:
            return dict(await self._cache.get_levels(item_id, locations))
        except CacheUnavailable as exc:
            self.cache_health.failed(exc)
            return {}

    async def _from_database(self, item_id: str, locations: Sequence[str] | None) -> ItemView:
        stored = await self._reader.item_at(item_id, locations)
        if stored is None:
            raise ItemNotFound(item_id)
        self._floor.raise_to(item_id, stored.version)
        await self.fill_cache(entry_for(stored))
        if stored.deleted:
            raise ItemNotFound(item_id)
        return item_view(stored)

    async def read_snapshot(self, item_id: str, locations: Sequence[str] | None = None) -> ItemEntry:
        """The item as SQLite has it now, with its levels at ``locations`` (all when None); a
        tombstone entry when deleted."""
        item = await self._reader.item_at(item_id, locations)
        if item is None:
            raise ItemNotFound(item_id)
        self._floor.raise_to(item_id, item.version)
        return entry_for(item)

    async def fill_cache(self, snapshot: ItemEntry) -> None:
        """Put what we read into the cache. Guarded by version: if the listener stored something
        newer between our read and this write, the write does nothing."""
        if not self.cache_health.usable():
            return
        try:
            await self._cache.put_items([snapshot])
        except CacheUnavailable as exc:
            self.cache_health.failed(exc)

    def stock_view(self, view: ItemView) -> StockView:
        return stock_view(view)


@dataclass(frozen=True)
class AuditPage:
    """A page of the audit log; ``filters`` with the item resolved to its id."""

    entries: list[AuditEntry]
    next_cursor: Cursor | None
    filters: AuditFilters
    unknown_item: bool = False


@dataclass(frozen=True)
class LowStockPage:
    rows: list[LowStockRow]
    total: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return (self.total + self.page_size - 1) // self.page_size


def _audit_where(filters: AuditFilters) -> AuditWhere:
    return AuditWhere(
        actor=filters.actor, location=filters.location, reason=filters.reason, event_type=filters.event_type
    )


def _low_row(level: LowLevel, default_threshold: int, ranked: list[tuple[str, int]]) -> LowStockRow | None:
    return low_row(
        item_id=level.item_id, sku=level.sku, name=level.name, threshold=level.low_stock_threshold,
        location=level.location, quantity=level.quantity, reserved=level.reserved, updated_at=level.updated_at,
        default_threshold=default_threshold, ranked=ranked,
    )  # fmt: skip
