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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from app.domain.model import Item, StockLevel
from app.domain.records import HistoryEntry, ItemView, LevelView, OutcomeChange, ReservationView, TransferView
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


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


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
        if q:
            where.append("(i.sku LIKE ? ESCAPE '\\' OR i.name LIKE ? ESCAPE '\\')")
            params += [_like(q), _like(q)]
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

    # --- commands and changes ------------------------------------------------------------

    async def outcome(self, command_id: str) -> OutcomeChange | None:
        rows = await self.rows(
            "SELECT command_id, item_id, event_type, location, status, reason, message, version, submitted_at, "
            "processed_at FROM command_outcomes WHERE command_id = ?",
            (command_id,),
        )
        return OutcomeChange(*rows[0]) if rows else None

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


def _filters(*, item_id: str | None, state: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("item_id", item_id), ("state", state)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def _items_with_levels(rows: Sequence[Sequence[Any]]) -> dict[str, Item]:
    """Items from rows of item columns followed by level columns (NULL when the item has none);
    dicts keep the rows' order, which is the page's order."""
    width = len(ITEM_COLUMNS.split(","))
    return assemble_items([row[:width] for row in rows], [row[width:] for row in rows if row[width] is not None])


def assemble_levels(rows: Sequence[Sequence[Any]]) -> list[LevelView]:
    return [level_view(StockLevel(*row[1:])) for row in rows]
