"""A node's replica of the read model: the listener's schema in the node's own ``replica.db``,
written only here, from the change records the listener committed.

Every record carries the rows its batch wrote (app/domain/records.py), so applying the records
of seq 1..N in order leaves exactly the listener's rows at seq N. Each write is an upsert by
primary key with the carried values and, for items and levels, guarded by version: applying a
record twice, or a record older than the row, changes nothing. The watermark (meta
``replica_seq``) moves in the same transaction as the rows, so a crash never leaves rows ahead
of or behind it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from app.clock import to_rfc3339, utc_now
from app.domain.records import Change, ItemChange, ItemSummary, OutcomeChange
from app.listener.schema import open_writer

WATERMARK = "replica_seq"

# The listener-internal tables: never replicated, emptied in a snapshot.
INTERNAL_TABLES = ("processed_events", "parked_events", "consumer_positions", "dead_letters")

_UPSERT_ITEM = (
    "INSERT INTO items (id, sku, name, description, version, created_at, updated_at, deleted_at, "
    "low_stock_threshold, quantity, reserved, in_transit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET sku = excluded.sku, name = excluded.name, description = excluded.description, "
    "version = excluded.version, created_at = excluded.created_at, updated_at = excluded.updated_at, "
    "deleted_at = excluded.deleted_at, low_stock_threshold = excluded.low_stock_threshold, "
    "quantity = excluded.quantity, reserved = excluded.reserved, in_transit = excluded.in_transit "
    "WHERE excluded.version > items.version OR (excluded.version = items.version AND excluded.deleted_at IS NOT NULL)"
)
# A level's alert state travels beside the level (``level_alerts``); when a record has none for
# it the stored state stays (a new level starts at the column's default).
_UPSERT_LEVEL = (
    "INSERT INTO stock_levels (item_id, location, quantity, reserved, version, updated_at, alert) "
    "VALUES (:item_id, :location, :quantity, :reserved, :version, :updated_at, COALESCE(:alert, 'ok')) "
    "ON CONFLICT (item_id, location) DO UPDATE SET quantity = excluded.quantity, reserved = excluded.reserved, "
    "version = excluded.version, updated_at = excluded.updated_at, alert = COALESCE(:alert, stock_levels.alert) "
    "WHERE excluded.version > stock_levels.version"
)
_INSERT_HISTORY = (
    "INSERT OR IGNORE INTO history (id, item_id, event_type, location, quantity_delta, reserved_delta, "
    "quantity_after, reserved_after, item_version, actor, command_id, event_id, note, occurred_at, applied_at, "
    "reason, reference, expected) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_TRANSFER = (
    "INSERT INTO transfers (id, item_id, from_location, to_location, quantity, state, shipped_at, received, "
    "closed_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "quantity = excluded.quantity, state = excluded.state, received = excluded.received, "
    "closed_at = excluded.closed_at, note = excluded.note"
)
_UPSERT_RESERVATION = (
    "INSERT INTO reservations (seq, id, item_id, location, quantity, reserved, state, created_at, reference, "
    "expires_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "quantity = excluded.quantity, reserved = excluded.reserved, state = excluded.state, "
    "reference = excluded.reference, expires_at = excluded.expires_at, closed_at = excluded.closed_at"
)
_INSERT_ALERT = (
    "INSERT OR IGNORE INTO alerts (id, item_id, sku, location, kind, available, threshold, command_id, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_OUTCOME = (
    "INSERT OR IGNORE INTO command_outcomes (command_id, item_id, event_type, location, status, reason, message, "
    "version, actor, submitted_at, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CHANGE = "INSERT OR IGNORE INTO changes (seq, kind, item_id, payload, created_at) VALUES (?, ?, ?, ?, ?)"
_SET_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"


@dataclass(frozen=True)
class Received:
    """One change record as the listener committed it: its sequence, the decoded change, and the
    stored outbox text (without ``seq``), which the replica keeps for SSE resumption."""

    seq: int
    change: Change
    payload: str


def stored_payload(raw: bytes) -> str:
    """The outbox text of a published record: the record without the ``"seq":N,`` the relay
    put in front (app/jsontext.py change_record), byte for byte."""
    head, _, rest = raw.partition(b",")
    if not head.startswith(b'{"seq":'):
        raise ValueError("not a published change record")
    return "{" + rest.decode()


def _item_row(item: ItemSummary, deleted_at: str | None) -> tuple[Any, ...]:
    return (
        item.id, item.sku, item.name, item.description, item.version, item.created_at, item.updated_at, deleted_at,
        item.low_stock_threshold, item.quantity, item.reserved, item.in_transit,
    )  # fmt: skip


class ReplicaStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The listener's own schema (tables, indexes, the search index and its triggers), so
        # InventoryReader reads a replica exactly like inventory.db.
        self._conn = await open_writer(str(self.path))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("replica store is not open")
        return self._conn

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self.conn.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def watermark(self) -> int | None:
        """Every change up to this sequence is applied; None before the first snapshot."""
        value = await self._one("SELECT value FROM meta WHERE key = ?", (WATERMARK,))
        return None if value is None else int(value)

    async def apply(self, records: Sequence[Received]) -> int:
        """Apply the records after the watermark, in order, in one transaction; return the new
        watermark. The caller hands them without gaps; one at or below the watermark is skipped,
        so applying a record again is a no-op."""
        conn = self.conn
        await conn.execute("BEGIN IMMEDIATE")
        try:
            current = await self._one("SELECT value FROM meta WHERE key = ?", (WATERMARK,))
            mark = int(current) if current is not None else 0
            fresh = [r for r in records if r.seq > mark]
            if fresh:
                await self._write(fresh)
                mark = fresh[-1].seq
                await conn.executemany(_SET_META, [(WATERMARK, str(mark)), ("published_seq", str(mark))])
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise
        return mark

    async def _write(self, records: Sequence[Received]) -> None:
        conn = self.conn
        items = [r.change for r in records if isinstance(r.change, ItemChange)]
        # Deletes first: a deleted item frees its SKU, which an item created in the same batch may
        # take (the live-SKU index is checked row by row). Versions keep the rest in order.
        tombstones = [
            _item_row(c.tombstone, c.deleted_at or c.tombstone.updated_at) for c in items if c.tombstone is not None
        ]
        await conn.executemany(_UPSERT_ITEM, tombstones)
        await conn.executemany(_UPSERT_ITEM, [_item_row(c.item, None) for c in items if c.item is not None])
        await conn.executemany(
            _UPSERT_LEVEL,
            [
                {
                    "item_id": c.item_id, "location": lv.location, "quantity": lv.quantity, "reserved": lv.reserved,
                    "version": lv.version, "updated_at": lv.updated_at, "alert": c.level_alerts.get(lv.location),
                }
                for c in items
                for lv in c.levels
            ],
        )  # fmt: skip
        await conn.executemany(
            _INSERT_HISTORY,
            [
                (
                    h.id, h.item_id, h.event_type, h.location, h.quantity_delta, h.reserved_delta, h.quantity_after,
                    h.reserved_after, h.item_version, h.actor, h.command_id, h.event_id, h.note, h.occurred_at,
                    h.applied_at, h.reason, h.reference, h.expected,
                )
                for c in items
                for h in c.history
            ],
        )  # fmt: skip
        await conn.executemany(
            _UPSERT_TRANSFER,
            [
                (t.id, t.item_id, t.from_location, t.to_location, t.quantity, t.state, t.shipped_at, t.received,
                 t.closed_at, t.note)
                for c in items
                for t in c.transfers
            ],
        )  # fmt: skip
        await conn.executemany(
            _UPSERT_RESERVATION,
            [
                (c.reservation_seqs.get(r.id), r.id, r.item_id, r.location, r.quantity, r.reserved, r.state,
                 r.created_at, r.reference, r.expires_at, r.closed_at)
                for c in items
                for r in c.reservations
            ],
        )  # fmt: skip
        await conn.executemany(
            _INSERT_ALERT,
            [
                (a.id, a.item_id, a.sku, a.location, a.kind, a.available, a.threshold, a.command_id, a.at)
                for c in items
                for a in c.alerts
            ],
        )
        await conn.executemany(
            _INSERT_OUTCOME,
            [
                (o.command_id, o.item_id, o.event_type, o.location, o.status, o.reason, o.message, o.version,
                 o.actor, o.submitted_at, o.processed_at)
                for o in (r.change for r in records)
                if isinstance(o, OutcomeChange)
            ],
        )  # fmt: skip
        now = utc_now()
        await conn.executemany(
            _INSERT_CHANGE, [(r.seq, r.change.kind, r.change.item_id, r.payload, now) for r in records]
        )

    async def changes_after(self, seq: int, limit: int) -> list[tuple[int, str, str, str]]:
        """(seq, kind, item_id, payload) of the kept records after ``seq``, oldest first."""
        async with self.conn.execute(
            "SELECT seq, kind, item_id, payload FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ) as cursor:
            return [(int(s), str(k), str(i), str(p)) for s, k, i, p in await cursor.fetchall()]

    async def install(self, snapshot: Path, seq: int, *, changed: bool = False) -> list[tuple[str, int]]:
        """Replace the whole replica by a snapshot file, through SQLite's backup API *into* this
        open connection: readers on other connections see the old content or the new one, never
        a mix, and keep their connections. ``seq`` is the snapshot's sequence.

        With ``changed``, returns (id, version) of the items the snapshot changes: what a cache
        of the old content holds stale copies of (one join over the items, on a rare event)."""
        moved: list[tuple[str, int]] = []
        if changed:
            await self.conn.execute("ATTACH DATABASE ? AS snapshot", (str(snapshot),))
            try:
                async with self.conn.execute(
                    "SELECT s.id, s.version FROM snapshot.items s LEFT JOIN main.items m ON m.id = s.id "
                    "WHERE m.version IS NOT s.version OR m.deleted_at IS NOT s.deleted_at"
                ) as cursor:
                    moved = [(str(item_id), int(version)) for item_id, version in await cursor.fetchall()]
            finally:
                await self.conn.execute("DETACH DATABASE snapshot")
        source = await aiosqlite.connect(f"file:{snapshot}?mode=ro", uri=True)
        try:
            await source.backup(self.conn)
        finally:
            await source.close()
        conn = self.conn
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for table in INTERNAL_TABLES:
                await conn.execute(f"DELETE FROM {table}")
            await conn.executemany(_SET_META, [(WATERMARK, str(seq)), ("published_seq", str(seq))])
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise
        return moved

    async def prune(self, retention_seconds: int, *, limit: int = 5000) -> int:
        """Forget kept records older than the listener's retention (at most ``limit`` per call):
        SSE resumption on this node then reaches back as far as on the listener."""
        cutoff = to_rfc3339(datetime.fromtimestamp(datetime.now(UTC).timestamp() - retention_seconds, UTC))
        try:
            cursor = await self.conn.execute(
                "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes WHERE created_at < ? ORDER BY seq LIMIT ?)",
                (cutoff, limit),
            )
        except sqlite3.OperationalError:  # pragma: no cover - busy: the next round prunes
            return 0
        return int(cursor.rowcount)
