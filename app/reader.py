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

from app.domain.model import Item
from app.domain.records import HistoryEntry, ItemView, OutcomeChange
from app.domain.views import at_location, item_view
from app.item_rows import ITEMS_BY_IDS, LEVELS_BY_IDS, assemble_items
from app.sqlitefiles import open_read_only

ItemState = Literal["live", "deleted"]

SORTS = {
    "sku": "i.sku ASC",
    "-sku": "i.sku DESC",
    "name": "i.name COLLATE NOCASE ASC, i.sku ASC",
    "-name": "i.name COLLATE NOCASE DESC, i.sku ASC",
    "quantity": "quantity ASC, i.sku ASC",
    "-quantity": "quantity DESC, i.sku ASC",
    "available": "available ASC, i.sku ASC",
    "-available": "available DESC, i.sku ASC",
    "updated_at": "i.updated_at ASC, i.sku ASC",
    "-updated_at": "i.updated_at DESC, i.sku ASC",
}


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

    async def list_items(
        self, *, page: int, page_size: int, q: str | None, location: str | None, sort: str
    ) -> ItemPage:
        where = ["i.deleted_at IS NULL"]
        params: list[Any] = []
        if q:
            where.append("(i.sku LIKE ? ESCAPE '\\' OR i.name LIKE ? ESCAPE '\\')")
            params += [_like(q), _like(q)]
        level_filter = ""
        if location:
            where.append("EXISTS (SELECT 1 FROM stock_levels s WHERE s.item_id = i.id AND s.location = ?)")
            params.append(location)
            level_filter = "WHERE location = ?"
        condition = " AND ".join(where)
        total_rows = await self.rows(f"SELECT COUNT(*) FROM items i WHERE {condition}", params)
        total = int(total_rows[0][0])
        page_params = [page_size, (page - 1) * page_size]
        if sort.lstrip("-") in ("quantity", "available"):
            # Sorting by stock needs every item's totals.
            totals_params = [location] if location else []
            rows = await self.rows(
                "WITH totals AS (SELECT item_id, SUM(quantity) AS q, SUM(reserved) AS r "
                f"FROM stock_levels {level_filter} GROUP BY item_id) "
                "SELECT i.id, COALESCE(t.q, 0) AS quantity, COALESCE(t.q, 0) - COALESCE(t.r, 0) AS available "
                f"FROM items i LEFT JOIN totals t ON t.item_id = i.id WHERE {condition} "
                f"ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?",
                [*totals_params, *params, *page_params],
            )
        else:
            # Otherwise the page comes from the items table alone; only its rows get totals.
            rows = await self.rows(
                f"SELECT i.id FROM items i WHERE {condition} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?",
                [*params, *page_params],
            )
        ids = [row[0] for row in rows]
        items = await self._items(ids)
        views = [item_view(items[i]) for i in ids if i in items]
        if location:
            views = [at_location(view, location) for view in views]
        return ItemPage(views, total, page, page_size)

    async def history(self, item_id: str, *, limit: int, before: int | None) -> list[HistoryEntry]:
        rows = await self.rows(
            "SELECT id, event_type, location, quantity_delta, reserved_delta, quantity_after, reserved_after, "
            "item_version, actor, command_id, note, occurred_at, applied_at FROM history "
            "WHERE item_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (item_id, before if before is not None else 2**62, limit),
        )
        return [HistoryEntry(*row) for row in rows]

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
