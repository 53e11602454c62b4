"""Read-only access to the inventory database, for the command and query services.

Connections are opened with ``mode=ro``: SQLite refuses any write through them, which keeps
the listener the only writer. The file may not exist yet when a service starts before the
listener; every read then raises ``ReadModelUnavailable`` until it appears.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from app.domain import search
from app.domain.audit import AuditEntry
from app.domain.low_stock import low_ranks
from app.domain.model import Item, StockLevel, TransferState
from app.domain.records import (
    HistoryEntry,
    ItemView,
    LevelView,
    OutcomeChange,
    ReservationView,
    StockAlert,
    TransferView,
)
from app.domain.views import (
    at_location,
    item_view,
    level_view,
    reservation_view,
    summary_view,
    transfer_view,
    with_levels,
)
from app.item_rows import (
    ITEM_COLUMNS,
    ITEMS_BY_IDS,
    LEVEL_COLUMNS,
    LEVELS_BY_IDS,
    RESERVATION_COLUMNS,
    TRANSFER_COLUMNS,
    assemble_items,
    reservation_from_row,
    transfer_from_row,
)
from app.sqlitefiles import open_read_only

ItemState = Literal["live", "deleted"]

# ``{t}`` is the row that holds the stock being sorted: the item row (chain totals) for the
# chain-wide list, the store's level row for one store's list. The expressions match the indexes
# in app/listener/schema.py (items_live_available, stock_levels_location_available).
SORTS = {
    "sku": "i.sku ASC",
    "-sku": "i.sku DESC",
    "name": "i.name COLLATE NOCASE ASC, i.sku ASC",
    "-name": "i.name COLLATE NOCASE DESC, i.sku ASC",
    "quantity": "{t}.quantity ASC, i.sku ASC",
    "-quantity": "{t}.quantity DESC, i.sku ASC",
    "available": "{t}.quantity - {t}.reserved ASC, i.sku ASC",
    "-available": "{t}.quantity - {t}.reserved DESC, i.sku ASC",
    "updated_at": "i.updated_at ASC, i.sku ASC",
    "-updated_at": "i.updated_at DESC, i.sku ASC",
}
ITEM_COLUMNS_OF_I = ", ".join(f"i.{column.strip()}" for column in ITEM_COLUMNS.split(","))
LEVEL_COLUMNS_OF_S = ", ".join(f"s.{column.strip()}" for column in LEVEL_COLUMNS.split(","))
TRANSFER_COLUMNS_OF_T = ", ".join(f"t.{column.strip()}" for column in TRANSFER_COLUMNS.split(","))
RESERVATION_COLUMNS_OF_R = ", ".join(f"r.{column.strip()}" for column in RESERVATION_COLUMNS.split(","))


class ReadModelUnavailable(RuntimeError):
    """The inventory database cannot be read right now."""


@dataclass(frozen=True)
class ItemPage:
    items: list[ItemView]
    total: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return (self.total + self.page_size - 1) // self.page_size


# app/domain/rules.py:attention_rank in SQL, over a level ``s`` of item ``i``; the default
# threshold is the one parameter it takes.
ATTENTION_ORDER = (
    "CASE WHEN s.quantity - s.reserved <= 0 THEN 0"
    " WHEN s.quantity - s.reserved <= COALESCE(i.low_stock_threshold, :default_threshold) THEN 1 ELSE 2 END,"
    " (s.quantity - s.reserved) - COALESCE(i.low_stock_threshold, :default_threshold)"
)

# The wall's order (app/domain/wall.py:tile_rank and tile_key): ATTENTION_ORDER's groups, how
# far below the threshold inside the out and low groups only, then by name, so the tiles that
# need nothing keep their places from one rotation to the next while their stock moves.
_AVAILABLE = "(s.quantity - s.reserved)"
# Numbered parameters (the reads take a sequence): ?1 the locations (JSON), ?2 the default
# threshold, ?3 and ?4 the page's limit and offset.
_LIMIT = "COALESCE(i.low_stock_threshold, ?2)"
_GROUP = f"CASE WHEN {_AVAILABLE} <= 0 THEN 0 WHEN {_AVAILABLE} <= {_LIMIT} THEN 1 ELSE 2 END"
WALL_ORDER = (
    f"{_GROUP}, CASE WHEN {_AVAILABLE} <= {_LIMIT} THEN {_AVAILABLE} - {_LIMIT} ELSE 0 END, "
    "i.name COLLATE NOCASE, i.sku, s.location"
)
# Out or low (stock_state is not "ok"): nothing available, or at most the threshold.
NEEDS_ATTENTION = f"{_AVAILABLE} <= MAX(0, {_LIMIT})"


@dataclass(frozen=True)
class WallPage:
    """One screen of a wall: its tiles (each an item at one of the wall's locations, in wall
    order) and the counts of the whole wall."""

    tiles: list[ItemView]
    out: int
    low: int
    total: int
    # How many tiles the wall pages through: every level, or only the out and low ones.
    shown: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return max(1, (self.shown + self.page_size - 1) // self.page_size)


# The low-stock read walks rank by rank up to this many ranks (about the highest threshold in
# use), then sorts instead (InventoryReader.low_levels).
MAX_RANK_WALK = 200


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def fts_match(words: Sequence[str]) -> str:
    """A full-text query (FTS5) in which every word is a quoted phrase, all of them required. In a
    quoted phrase nothing is syntax (no operator, column filter or prefix star) but the quote
    itself, written twice: no input can change the query's meaning or break it."""
    return " AND ".join('"' + word.replace('"', '""') + '"' for word in words)


def item_search(q: str | None) -> tuple[list[str], list[Any]]:
    """The conditions on items ``i`` for a search (app/domain/search.py): the words of three
    letters or more through the trigram index (items_search, app/listener/schema.py), shorter
    ones by a LIKE over the rows the index left (or over every row when all words are short)."""
    words = search.search_words(q)
    where: list[str] = []
    params: list[Any] = []
    indexed = search.indexed_words(words)
    if indexed:
        where.append("i.rowid IN (SELECT rowid FROM items_search WHERE items_search MATCH ?)")
        params.append(fts_match(indexed))
    for word in search.short_words(words):
        where.append("(i.sku LIKE ? ESCAPE '\\' OR i.name LIKE ? ESCAPE '\\')")
        params += [_like(word), _like(word)]
    return where, params


class InventoryReader:
    def __init__(self, path: Path, *, connections: int = 3) -> None:
        self.path = path
        self._size = connections
        self._pool: list[aiosqlite.Connection] = []
        self._next = itertools.cycle(range(connections))
        self._opening = asyncio.Lock()

    async def close(self) -> None:
        for conn in self._pool:
            await conn.close()
        self._pool = []

    async def connection(self) -> aiosqlite.Connection:
        if not self._pool:
            async with self._opening:
                if not self._pool:
                    if not self.path.exists():
                        raise ReadModelUnavailable("the inventory database does not exist yet")
                    try:
                        self._pool = [await open_read_only(self.path) for _ in range(self._size)]
                    except sqlite3.Error as exc:
                        raise ReadModelUnavailable(f"cannot open the inventory database: {exc}") from None
        return self._pool[next(self._next) % len(self._pool)]

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        conn = await self.connection()
        try:
            async with conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise ReadModelUnavailable("the inventory database is not initialised yet") from None
            raise ReadModelUnavailable(f"inventory database read failed: {exc}") from None

    # --- items ---------------------------------------------------------------------------

    async def item_state(self, item_id: str) -> ItemState | None:
        rows = await self.rows("SELECT deleted_at FROM items WHERE id = ?", (item_id,))
        if not rows:
            return None
        return "deleted" if rows[0][0] is not None else "live"

    async def sku_taken(self, sku: str) -> bool:
        return bool(await self.rows("SELECT 1 FROM items WHERE sku = ? AND deleted_at IS NULL", (sku,)))

    async def item(self, item_id: str) -> Item | None:
        """The item, deleted or not (None if it never existed)."""
        items = await self._items([item_id])
        return items.get(item_id)

    async def item_id_by_sku(self, sku: str) -> str | None:
        rows = await self.rows("SELECT id FROM items WHERE sku = ? AND deleted_at IS NULL", (sku,))
        return rows[0][0] if rows else None

    async def _items(self, item_ids: Sequence[str]) -> dict[str, Item]:
        if not item_ids:
            return {}
        ids = json.dumps(list(item_ids))
        return assemble_items(await self.rows(ITEMS_BY_IDS, (ids,)), await self.rows(LEVELS_BY_IDS, (ids,)))

    async def item_at(self, item_id: str, locations: Sequence[str] | None) -> Item | None:
        """The item with its levels at these locations (every level when None), deleted or not.

        One statement, so the item row and its levels are one snapshot of the file; the levels
        are read by primary key (item_id, location), never another item's or store's."""
        level_join = "s.item_id = i.id"
        params: list[Any] = []
        if locations is not None:
            level_join += " AND s.location IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(locations)))
        rows = await self.rows(
            f"SELECT {ITEM_COLUMNS_OF_I}, {LEVEL_COLUMNS_OF_S} FROM items i "
            f"LEFT JOIN stock_levels s ON {level_join} WHERE i.id = ?",
            [*params, item_id],
        )
        return _items_with_levels(rows).get(item_id)

    async def level_page(self, item_id: str, *, page: int, page_size: int) -> tuple[list[LevelView], int]:
        """One page of an item's levels by location, and how many it has: a range of the primary key."""
        total_rows = await self.rows("SELECT COUNT(*) FROM stock_levels WHERE item_id = ?", (item_id,))
        rows = await self.rows(
            f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE item_id = ? ORDER BY location LIMIT ? OFFSET ?",
            (item_id, page_size, (page - 1) * page_size),
        )
        levels = assemble_levels(rows)
        return levels, int(total_rows[0][0])

    async def list_items(
        self, *, page: int, page_size: int, q: str | None, location: str | None, sort: str
    ) -> ItemPage:
        """A page of live items. With ``location`` it is that store's list: only items stocked
        there, each with just that level and its totals narrowed to it, read through the
        (location, ...) indexes of stock_levels so no other store's level is read. Without it,
        the chain's list: the totals kept on the item row and no levels at all (``locations``
        is empty, see docs/decisions.md)."""
        where = ["i.deleted_at IS NULL"]
        params: list[Any] = []
        search_where, search_params = item_search(q)
        where += search_where
        params += search_params
        page_params = [page_size, (page - 1) * page_size]
        if location:
            source = "stock_levels s JOIN items i ON i.id = s.item_id"
            condition = " AND ".join(["s.location = ?", *where])
            params = [location, *params]
            columns = f"{ITEM_COLUMNS_OF_I}, {LEVEL_COLUMNS_OF_S}"
            order = SORTS[sort].format(t="s")
        else:
            source = "items i"
            condition = " AND ".join(where)
            columns = ITEM_COLUMNS_OF_I
            order = SORTS[sort].format(t="i")
        total_rows = await self.rows(f"SELECT COUNT(*) FROM {source} WHERE {condition}", params)
        rows = await self.rows(
            f"SELECT {columns} FROM {source} WHERE {condition} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, *page_params],
        )
        if location:
            items = _items_with_levels(rows)
            views = [at_location(item_view(item), location) for item in items.values()]
        else:
            items = assemble_items(rows, ())
            views = [with_levels(summary_view(item), []) for item in items.values()]
        return ItemPage(views, int(total_rows[0][0]), page, page_size)

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
        """One screen of a wall over these locations: their live items' levels, most urgent
        first (WALL_ORDER), one tile per item and location, and the wall's counts. Read through
        the (location, item_id) index of stock_levels, so a wall costs what its stores hold,
        whatever the size of the chain. A page past the end has no tiles."""
        params = [json.dumps(list(locations)), default_threshold, page_size, (page - 1) * page_size]
        source = (
            "stock_levels s JOIN items i ON i.id = s.item_id "
            "WHERE s.location IN (SELECT value FROM json_each(?1)) AND i.deleted_at IS NULL"
        )
        if sku_prefix:
            # ?5: a department's wall (LIKE is case-insensitive for ASCII, like the domain's sku_on).
            source += " AND i.sku LIKE ?5 ESCAPE '\\'"
            params.append(_like(sku_prefix)[1:])
        counts = await self.rows(
            f"SELECT COALESCE(SUM({_AVAILABLE} <= 0), 0), "
            f"COALESCE(SUM({_AVAILABLE} > 0 AND {_AVAILABLE} <= {_LIMIT}), 0), COUNT(*) FROM {source}",
            params if sku_prefix else params[:2],  # SQLite wants every numbered parameter up to the last
        )
        out, low, total = (int(value) for value in counts[0])
        condition = f" AND {NEEDS_ATTENTION}" if attention_only else ""
        rows = await self.rows(
            f"SELECT {ITEM_COLUMNS_OF_I}, {LEVEL_COLUMNS_OF_S} FROM {source}{condition} "
            f"ORDER BY {WALL_ORDER} LIMIT ?3 OFFSET ?4",
            params,
        )
        # Row by row, not grouped by item: a regional wall has a tile per item and location.
        location_column = len(ITEM_COLUMNS.split(",")) + 1
        tiles = [
            at_location(item_view(item), row[location_column])
            for row in rows
            for item in _items_with_levels([row]).values()
        ]
        return WallPage(tiles, out, low, total, out + low if attention_only else total, page, page_size)

    async def history_newer_cursor(self, item_id: str, *, after: int, limit: int) -> int | None:
        """The ``before`` cursor of the page of ``limit`` history entries just newer than entry
        ``after`` (None when fewer than ``limit`` are newer: that page is the newest one). A walk
        of the (item_id, id) index from ``after``, not of the whole history."""
        rows = await self.rows(
            "SELECT id FROM history WHERE item_id = ? AND id > ? ORDER BY id LIMIT 1 OFFSET ?",
            (item_id, after, limit - 1),
        )
        return int(rows[0][0]) + 1 if rows else None

    async def history(self, item_id: str, *, limit: int, before: int | None) -> list[HistoryEntry]:
        rows = await self.rows(
            "SELECT id, event_type, location, quantity_delta, reserved_delta, quantity_after, reserved_after, "
            "item_version, actor, command_id, note, occurred_at, applied_at, reason, reference, expected FROM history "
            "WHERE item_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (item_id, before if before is not None else 2**62, limit),
        )
        return [HistoryEntry(*row) for row in rows]

    # --- transfers and reservations -------------------------------------------------------

    async def transfers(
        self,
        *,
        item_id: str | None = None,
        location: str | None = None,
        state: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> tuple[list[TransferView], int]:
        """Transfers newest first, with how many match: of an item, from or to a location, in a state."""
        where, params = _filters(item_id=item_id, state=state)
        if location:
            where.append("(from_location = ? OR to_location = ?)")
            params += [location, location]
        condition = " AND ".join(where) or "1"
        total = await self.rows(f"SELECT COUNT(*) FROM transfers WHERE {condition}", params)
        rows = await self.rows(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE {condition} ORDER BY shipped_at DESC, id LIMIT ? OFFSET ?",
            [*params, page_size, (page - 1) * page_size],
        )
        return [transfer_view(transfer_from_row(row)) for row in rows], int(total[0][0])

    async def reservations(
        self,
        *,
        item_id: str | None = None,
        location: str | None = None,
        reference: str | None = None,
        state: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> tuple[list[ReservationView], int]:
        """Reservations newest first, with how many match: of an item, at a location, for a reference,
        in a state."""
        where, params = _filters(item_id=item_id, state=state)
        for column, value in (("location", location), ("reference", reference)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        condition = " AND ".join(where) or "1"
        total = await self.rows(f"SELECT COUNT(*) FROM reservations WHERE {condition}", params)
        rows = await self.rows(
            f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE {condition} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*params, page_size, (page - 1) * page_size],
        )
        return [reservation_view(reservation_from_row(row)) for row in rows], int(total[0][0])

    # --- exports (app/queries/exports.py): keyset walks, one bounded read per batch, no OFFSET ---

    async def export_items(
        self, *, after_sku: str | None, limit: int, q: str | None, locations: Sequence[str] | None
    ) -> list[Item]:
        """Up to ``limit`` live items after ``after_sku`` in SKU order (a walk of items_live_sku),
        each with its levels at ``locations`` (every level when None), read by primary key. One
        statement, so a batch is one snapshot of the file."""
        where = ["i.deleted_at IS NULL", "i.sku > ?"]
        params: list[Any] = [after_sku or ""]
        search_where, search_params = item_search(q)
        where += search_where
        params += [*search_params, limit]
        level_join = "s.item_id = i.id"
        if locations is not None:
            level_join += " AND s.location IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(locations)))
        rows = await self.rows(
            f"SELECT {ITEM_COLUMNS_OF_I}, {LEVEL_COLUMNS_OF_S} FROM "
            f"(SELECT * FROM items i WHERE {' AND '.join(where)} ORDER BY i.sku LIMIT ?) i "
            f"LEFT JOIN stock_levels s ON {level_join} ORDER BY i.sku, s.location",
            params,
        )
        return list(_items_with_levels(rows).values())

    async def export_transfers(
        self,
        *,
        item_id: str | None,
        location: str | None,
        state: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[tuple[TransferView, str | None, str | None]]:
        """Transfers in the order of ``transfers`` (newest shipped first, then by id) after the
        (shipped_at, id) of the last one read, each with its item's SKU and name.

        No index holds every transfer by shipped_at, but each state (and each end of a transfer)
        has one: the batch is the first ``limit`` of one bounded walk per state and end (the
        indexes transfers_state, transfers_from, transfers_to, transfers_item), merged. Reading
        the next batch starts from the cursor in each, so an export costs what it writes (a few
        times over), not a sort of every transfer per batch."""
        common: list[str] = []
        common_params: list[Any] = []
        if item_id:
            common.append("t.item_id = ?")
            common_params.append(item_id)
        if after is not None:
            # A range on shipped_at (so the walk starts at the cursor), then the tie on id.
            common.append("t.shipped_at <= ? AND (t.shipped_at < ? OR t.id > ?)")
            common_params += [after[0], after[0], after[1]]
        ends = ["t.from_location = ?", "t.to_location = ?"] if location else [None]
        found: list[Sequence[Any]] = []
        for one_state in [state] if state else [s.value for s in TransferState]:
            for end in ends:
                where = [*common, "t.state = ?", *([end] if end else [])]
                params = [*common_params, one_state, *([location] if end else [])]
                found += await self.rows(
                    f"SELECT {TRANSFER_COLUMNS_OF_T}, i.sku, i.name FROM transfers t "
                    f"LEFT JOIN items i ON i.id = t.item_id WHERE {' AND '.join(where)} "
                    "ORDER BY t.shipped_at DESC, t.id LIMIT ?",
                    [*params, limit],
                )
        # Newest shipped first, then by id: shipped_at descending as a sort key on text.
        found.sort(key=lambda row: row[0])
        found.sort(key=lambda row: row[6], reverse=True)
        return [(transfer_view(transfer_from_row(row[:-2])), row[-2], row[-1]) for row in found[:limit]]

    async def export_reservations(
        self,
        *,
        item_id: str | None,
        location: str | None,
        reference: str | None,
        state: str | None,
        before_seq: int | None,
        limit: int,
    ) -> tuple[list[tuple[ReservationView, str | None, str | None]], int | None]:
        """Reservations newest first (by seq, as ``reservations``) before ``before_seq``, each with
        its item's SKU and name, and the seq to read the next batch before (None: no more)."""
        where = ["r.seq < ?"]
        params: list[Any] = [before_seq if before_seq is not None else 2**62]
        for column, value in (
            ("r.item_id", item_id),
            ("r.location", location),
            ("r.reference", reference),
            ("r.state", state),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self.rows(
            f"SELECT {RESERVATION_COLUMNS_OF_R}, i.sku, i.name FROM reservations r "
            f"LEFT JOIN items i ON i.id = r.item_id WHERE {' AND '.join(where)} ORDER BY r.seq DESC LIMIT ?",
            [*params, limit],
        )
        found = [(reservation_view(reservation_from_row(row[:-2])), row[-2], row[-1]) for row in rows]
        return found, (int(rows[-1][-3]) if len(rows) == limit else None)

    # --- commands and changes ------------------------------------------------------------

    async def outcome(self, command_id: str) -> OutcomeChange | None:
        rows = await self.rows(
            "SELECT command_id, item_id, event_type, location, status, reason, message, version, submitted_at, "
            "processed_at FROM command_outcomes WHERE command_id = ?",
            (command_id,),
        )
        return OutcomeChange(*rows[0]) if rows else None

    async def outcome_actor(self, command_id: str) -> str | None:
        """Who sent a decided command (None when it is not decided here)."""
        rows = await self.rows("SELECT actor FROM command_outcomes WHERE command_id = ?", (command_id,))
        return str(rows[0][0]) if rows else None

    async def changes_after(self, seq: int, limit: int) -> list[tuple[int, str, str]]:
        """(seq, kind, payload) of the changes after seq, oldest first."""
        rows = await self.rows(
            "SELECT seq, kind, payload FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(s, k, p) for s, k, p in rows]

    async def last_published_seq(self) -> int:
        """The newest change the listener has announced on the feed."""
        rows = await self.rows("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'published_seq'")
        return int(rows[0][0]) if rows else 0

    async def dead_letters(self, *, limit: int, letter_id: int | None = None) -> list[dict[str, Any]]:
        rows = await self.rows(
            'SELECT id, topic, partition, "offset", key, value, headers, error, attempts, created_at, replayed_at '
            "FROM dead_letters WHERE (? IS NULL OR id = ?) ORDER BY id DESC LIMIT ?",
            (letter_id, letter_id, limit),
        )
        keys = (
            "id", "topic", "partition", "offset", "key", "value", "headers", "error", "attempts", "created_at",
            "replayed_at",
        )  # fmt: skip
        letters = [dict(zip(keys, row, strict=True)) for row in rows]
        for letter in letters:
            letter["headers"] = [(k, v.encode("latin-1")) for k, v in json.loads(letter["headers"])]
        return letters

    async def seq_range(self) -> tuple[int, int]:
        """Oldest and newest change sequence numbers still kept (0, 0 when there are none)."""
        rows = await self.rows("SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM changes")
        return int(rows[0][0]), int(rows[0][1])

    async def named_rows(self, sql: str, params: Mapping[str, Any]) -> list[sqlite3.Row]:
        """``rows`` for statements with named parameters (ATTENTION_ORDER's :default_threshold)."""
        conn = await self.connection()
        try:
            async with conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise ReadModelUnavailable("the inventory database is not initialised yet") from None
            raise ReadModelUnavailable(f"inventory database read failed: {exc}") from None

    # --- the audit log and low stock across the chain (app/queries/audit.py, low_stock.py) ---

    async def audit_applied(
        self, where: AuditWhere, *, before: int | None, limit: int, item_id: str | None = None
    ) -> list[AuditEntry]:
        """History rows newest first by id, before ``before``: each filter walks its index of
        history ((actor, id), (location, id), (reason, id), (item_id, id)), never OFFSET."""
        conditions, params = _audit_conditions(where, "h", reason_column="h.reason")
        if item_id is not None:
            conditions.append("h.item_id = ?")
            params.append(item_id)
        rows = await self.rows(
            f"SELECT {AUDIT_APPLIED_COLUMNS} FROM history h LEFT JOIN items i ON i.id = h.item_id "
            f"WHERE h.id < ? {''.join(' AND ' + c for c in conditions)} ORDER BY h.id DESC LIMIT ?",
            [before if before is not None else 2**62, *params, limit],
        )
        return [_applied_entry(row) for row in rows]

    async def audit_rejected(
        self, where: AuditWhere, *, before: tuple[str, str] | None, limit: int, item_id: str | None = None
    ) -> list[AuditEntry]:
        """Rejected commands newest first, along the partial index of rejections."""
        conditions, params = _audit_conditions(where, "o", reason_column="o.reason")
        if item_id is not None:
            conditions.append("o.item_id = ?")
            params.append(item_id)
        if before is not None:
            conditions.append("(o.processed_at, o.command_id) < (?, ?)")
            params += list(before)
        rows = await self.rows(
            f"SELECT {AUDIT_REJECTED_COLUMNS} FROM command_outcomes o LEFT JOIN items i ON i.id = o.item_id "
            f"WHERE o.status = 'rejected' {''.join(' AND ' + c for c in conditions)} "
            "ORDER BY o.processed_at DESC, o.command_id DESC LIMIT ?",
            [*params, limit],
        )
        return [_rejected_entry(row) for row in rows]

    async def audit_applied_of_item(self, item_id: str, *, after: int) -> list[AuditEntry]:
        """An item's history rows after ``after``, oldest first (what a change just wrote)."""
        rows = await self.rows(
            f"SELECT {AUDIT_APPLIED_COLUMNS} FROM history h LEFT JOIN items i ON i.id = h.item_id "
            "WHERE h.item_id = ? AND h.id > ? ORDER BY h.id LIMIT 100",
            (item_id, after),
        )
        return [_applied_entry(row) for row in rows]

    async def audit_rejection(self, command_id: str) -> AuditEntry | None:
        rows = await self.rows(
            f"SELECT {AUDIT_REJECTED_COLUMNS} FROM command_outcomes o LEFT JOIN items i ON i.id = o.item_id "
            "WHERE o.command_id = ? AND o.status = 'rejected'",
            (command_id,),
        )
        return _rejected_entry(rows[0]) if rows else None

    async def last_history_id(self) -> int:
        rows = await self.rows("SELECT COALESCE(MAX(id), 0) FROM history")
        return int(rows[0][0])

    async def item_id_of_sku(self, sku: str) -> str | None:
        """The item a SKU names: the live one, else the one that had it most recently (its
        history stays when it is deleted)."""
        rows = await self.rows(
            "SELECT id FROM items WHERE sku = ? ORDER BY deleted_at IS NULL DESC, deleted_at DESC LIMIT 1", (sku,)
        )
        return rows[0][0] if rows else None

    async def low_levels(
        self, *, locations: Sequence[str] | None, default_threshold: int, limit: int, offset: int
    ) -> tuple[list[LowLevel], int]:
        """Levels low or out (at these locations; None: anywhere), most urgent first as
        ATTENTION_ORDER ranks them (then by SKU and location), and how many there are.

        The rank depends on each item's threshold, so no index holds that order, and sorting
        every low level of a large chain costs about a second. But a rank takes few values
        (``low_ranks``): the page is read rank by rank, each an ordered walk of the items by SKU
        with one probe per item into stock_levels_item_available for its levels at exactly
        that rank; the ranks before the page are only counted, index-only."""
        if locations is not None and len(locations) == 1:
            return await self._low_levels_at(locations[0], default_threshold, limit, offset)
        where = "" if locations is None else " AND s.location IN (SELECT value FROM json_each(:locations))"
        params: dict[str, Any] = {
            "default_threshold": default_threshold,
            "locations": json.dumps(list(locations or ())),
        }
        join = "FROM items i JOIN stock_levels s ON s.item_id = i.id AND s.quantity - s.reserved"
        total = await self.named_rows(
            f"SELECT COUNT(*) {join} <= {THRESHOLD} WHERE i.deleted_at IS NULL{where}", params
        )
        thresholds = await self.named_rows(
            f"SELECT DISTINCT {THRESHOLD} FROM items i WHERE i.deleted_at IS NULL", params
        )
        in_force = sorted(int(row[0]) for row in thresholds)
        # As many ranks as thresholds (out) plus the highest threshold (low): counted first.
        if in_force and len(in_force) + max(in_force[-1], 0) > MAX_RANK_WALK:
            # An item with a very high threshold makes the walk as long as that threshold: past
            # this, one sort of the low levels costs less (it grows with them, not with a value).
            rows = await self.named_rows(
                f"SELECT {LOW_COLUMNS} {join} <= {THRESHOLD} WHERE i.deleted_at IS NULL{where} "
                f"ORDER BY {ATTENTION_ORDER}, i.sku, s.location LIMIT :limit OFFSET :offset",
                {**params, "limit": limit, "offset": offset},
            )
            return [LowLevel(*row) for row in rows], int(total[0][0])
        found: list[LowLevel] = []
        skip = offset
        for group, rank in low_ranks(in_force):
            if len(found) >= limit:
                break
            rank_params = {**params, "k": rank, "g": group}
            at_rank = f"{join} = {THRESHOLD} + :k WHERE i.deleted_at IS NULL AND {LOW_GROUP} = :g{where}"
            if skip:
                count = int((await self.named_rows(f"SELECT COUNT(*) {at_rank}", rank_params))[0][0])
                if skip >= count:
                    skip -= count
                    continue
            rows = await self.named_rows(
                f"SELECT {LOW_COLUMNS} {at_rank} ORDER BY i.sku, s.location LIMIT :limit OFFSET :offset",
                {**rank_params, "limit": limit - len(found), "offset": skip},
            )
            found += [LowLevel(*row) for row in rows]
            skip = 0
        return found, int(total[0][0])

    async def _low_levels_at(
        self, location: str, default_threshold: int, limit: int, offset: int
    ) -> tuple[list[LowLevel], int]:
        """One store's: its part of stock_levels_location_available, walked up to the highest
        threshold in use (no level above it can be low), then the few low ones sorted."""
        bound = await self.rows(
            f"SELECT MAX({THRESHOLD.replace(':default_threshold', '?')}) FROM items i WHERE i.deleted_at IS NULL",
            (default_threshold,),
        )
        ceiling = bound[0][0] if bound and bound[0][0] is not None else default_threshold
        source = (
            "FROM stock_levels s JOIN items i ON i.id = s.item_id "
            "WHERE s.location = :location AND s.quantity - s.reserved <= :ceiling AND i.deleted_at IS NULL "
            f"AND s.quantity - s.reserved <= {THRESHOLD}"
        )
        params: dict[str, Any] = {
            "location": location,
            "ceiling": max(int(ceiling), 0),
            "default_threshold": default_threshold,
        }
        total = await self.named_rows(f"SELECT COUNT(*) {source}", params)
        rows = await self.named_rows(
            f"SELECT {LOW_COLUMNS} {source} ORDER BY {ATTENTION_ORDER}, i.sku, s.location LIMIT :limit OFFSET :offset",
            {**params, "limit": limit, "offset": offset},
        )
        return [LowLevel(*row) for row in rows], int(total[0][0])

    # --- stock alerts (app/queries/alerts.py, the low-stock page and the wall) ----------------

    async def alerts(
        self,
        *,
        locations: Sequence[str] | None,
        kind: str | None,
        before: int | None,
        limit: int,
        sku_prefix: str = "",
    ) -> list[AlertEntry]:
        """Alerts newest first (by id) before ``before``, at these locations (None: anywhere), of
        one kind or any, of the SKUs with this prefix (a department's wall). At some locations,
        each location's part of the alerts_location index is walked from its newest, at most
        ``limit`` rows each, and the few found are merged: the cost does not grow with the other
        stores' alerts."""
        top = before if before is not None else 2**62
        kind_where = " AND n.kind = :kind" if kind else ""
        if sku_prefix:  # as the wall's SKU filter (app/domain/wall.py sku_on): case-insensitive
            kind_where += " AND lower(substr(n.sku, 1, length(:prefix))) = lower(:prefix)"
        params: dict[str, Any] = {"before": top, "kind": kind, "limit": limit, "prefix": sku_prefix}
        if locations is None:
            source = f"FROM alerts n WHERE n.id < :before{kind_where}"
            ids = f"SELECT n.id {source} ORDER BY n.id DESC LIMIT :limit"
        else:
            params["locations"] = json.dumps(list(locations))
            ids = (
                "SELECT m.id FROM json_each(:locations) w JOIN alerts m ON m.id IN (SELECT n.id FROM alerts n "
                f"WHERE n.location = w.value AND n.id < :before{kind_where} ORDER BY n.id DESC LIMIT :limit)"
            )
        rows = await self.named_rows(
            f"SELECT {ALERT_COLUMNS}, COALESCE(i.name, '') FROM alerts a LEFT JOIN items i ON i.id = a.item_id "
            f"WHERE a.id IN ({ids}) ORDER BY a.id DESC LIMIT :limit",
            params,
        )
        return [AlertEntry(*row) for row in rows]

    async def levels_of_item(self, item_id: str) -> list[LevelView]:
        """Every level of an item: a range of the primary key (at most one per location)."""
        rows = await self.rows(
            f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE item_id = ? ORDER BY location", (item_id,)
        )
        return assemble_levels(rows)

    async def best_sources(self, item_ids: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
        """For each item, its two locations with the most available, most first: one statement
        over the items' levels, read by primary key (item_id, location). Two, so a store that is
        itself the best is shown the next best."""
        if not item_ids:
            return {}
        rows = await self.rows(
            "SELECT item_id, location, available FROM ("
            " SELECT item_id, location, quantity - reserved AS available, ROW_NUMBER() OVER ("
            "  PARTITION BY item_id ORDER BY quantity - reserved DESC, location) AS n"
            " FROM stock_levels WHERE item_id IN (SELECT value FROM json_each(?))"
            ") WHERE n <= 2 ORDER BY item_id, n",
            (json.dumps(list(item_ids)),),
        )
        found: dict[str, list[tuple[str, int]]] = {}
        for item_id, location, available in rows:
            found.setdefault(item_id, []).append((location, int(available)))
        return found


def _filters(*, item_id: str | None, state: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("item_id", item_id), ("state", state)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


# The columns of an audit entry: an applied change (a history row) and a rejected command.
AUDIT_APPLIED_COLUMNS = (
    "h.id, h.applied_at, h.actor, h.event_type, h.item_id, h.command_id, i.sku, i.name, h.location, h.occurred_at, "
    "h.quantity_delta, h.reserved_delta, h.quantity_after, h.reserved_after, h.item_version, h.reason, "
    "h.reference, h.note"
)
AUDIT_REJECTED_COLUMNS = (
    "o.processed_at, o.actor, o.event_type, o.item_id, o.command_id, i.sku, i.name, o.location, o.submitted_at, "
    "o.reason, o.message"
)


@dataclass(frozen=True)
class AuditWhere:
    """The audit filters that are plain column equalities (the item is resolved beforehand)."""

    actor: str | None = None
    location: str | None = None
    reason: str | None = None
    event_type: str | None = None


def _audit_conditions(where: AuditWhere, table: str, *, reason_column: str) -> tuple[list[str], list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    for column, value in (
        (f"{table}.actor", where.actor),
        (f"{table}.location", where.location),
        (reason_column, where.reason),
        (f"{table}.event_type", where.event_type),
    ):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    return conditions, params


def _applied_entry(row: Sequence[Any]) -> AuditEntry:
    (
        entry_id, at, actor, event_type, item_id, command_id, sku, name, location, occurred_at,
        quantity_delta, reserved_delta, quantity_after, reserved_after, version, reason, reference, note,
    ) = row  # fmt: skip
    return AuditEntry(
        kind="applied", at=at, actor=actor, event_type=event_type, item_id=item_id, command_id=command_id,
        sku=sku, name=name, location=location, id=entry_id, occurred_at=occurred_at,
        quantity_delta=quantity_delta, reserved_delta=reserved_delta, quantity_after=quantity_after,
        reserved_after=reserved_after, version=version, reason=reason, reference=reference, note=note,
    )  # fmt: skip


def _rejected_entry(row: Sequence[Any]) -> AuditEntry:
    at, actor, event_type, item_id, command_id, sku, name, location, submitted_at, reason, message = row
    return AuditEntry(
        kind="rejected", at=at, actor=actor, event_type=event_type, item_id=item_id, command_id=command_id,
        sku=sku, name=name, location=location, occurred_at=submitted_at, reason=reason, message=message,
    )  # fmt: skip


# Low stock (InventoryReader.low_levels): a level ``s`` of item ``i``, the threshold in force,
# and the first part of ATTENTION_ORDER (0: out of stock, 1: low).
THRESHOLD = "COALESCE(i.low_stock_threshold, :default_threshold)"
LOW_GROUP = "CASE WHEN s.quantity - s.reserved <= 0 THEN 0 ELSE 1 END"
LOW_COLUMNS = "i.id, i.sku, i.name, i.low_stock_threshold, s.location, s.quantity, s.reserved, s.updated_at"


ALERT_COLUMNS = "a.id, a.item_id, a.sku, a.location, a.kind, a.available, a.threshold, a.command_id, a.at"


class AlertEntry(StockAlert, frozen=True):
    """A stock alert with its item's name now (for lists and pages)."""

    name: str


@dataclass(frozen=True)
class LowLevel:
    """A level that is low or out, with what the low-stock page names it by."""

    item_id: str
    sku: str
    name: str
    low_stock_threshold: int | None
    location: str
    quantity: int
    reserved: int
    updated_at: str

    @property
    def available(self) -> int:
        return self.quantity - self.reserved


def _items_with_levels(rows: Sequence[Sequence[Any]]) -> dict[str, Item]:
    """Items from rows of item columns followed by level columns (NULL when the item has none);
    dicts keep the rows' order, which is the page's order."""
    width = len(ITEM_COLUMNS.split(","))
    return assemble_items([row[:width] for row in rows], [row[width:] for row in rows if row[width] is not None])


def assemble_levels(rows: Sequence[Sequence[Any]]) -> list[LevelView]:
    return [level_view(StockLevel(*row[1:])) for row in rows]
