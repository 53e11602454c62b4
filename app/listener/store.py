"""The listener's access to the inventory database: load what a batch needs, write its plan.

Writes are guarded: items and levels by ``version`` (``UPDATE ... WHERE id=? AND version=?``),
consumed positions by re-reading them inside the transaction, processed event ids and live
SKUs by unique keys. Any guard that trips raises ``Conflict`` and the batch is planned again
from fresh reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from app.clock import utc_now
from app.domain.alerts import DEFAULT_THRESHOLD
from app.domain.catalogue import BY_EVENT_TYPE, decode_event
from app.domain.events import Event, PoisonMessage
from app.domain.model import Item
from app.domain.records import Change, StockAlert, encode_text
from app.eventlog.base import Headers, TopicPartition
from app.item_rows import (
    ANONYMOUS_TO_RELEASE,
    ITEM_COLUMNS,
    ITEMS_BY_IDS,
    LEVELS_BY_IDS,
    LEVELS_WITH_ALERT_BY_PAIRS,
    RESERVATIONS_BY_IDS,
    TRANSFERS_BY_IDS,
    assemble_items,
)
from app.listener.planner import Loaded, ParkedEvent, Plan
from app.listener.schema import open_writer

# At most this many committed change records wait in memory for the relay (see take_written).
WRITTEN_KEPT = 10_000
PUBLISHED_SEQ = "SELECT COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'published_seq'), 0)"


class Conflict(RuntimeError):
    """Someone else changed what this batch read; plan it again."""


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    error: str
    attempts: int


@dataclass(frozen=True)
class Pruned:
    changes: int
    processed_events: int


def _same_identity(before: Item, after: Item) -> bool:
    """Whether a change left every column of the item row but its stock and version alone."""
    return (
        before.sku == after.sku
        and before.name == after.name
        and before.description == after.description
        and before.deleted_at == after.deleted_at
        and before.low_stock_threshold == after.low_stock_threshold
    )


def _ids(values: Iterable[str]) -> str:
    return json.dumps(sorted(set(values)))


class InventoryStore:
    def __init__(self, path: Path, *, low_stock_threshold: int = DEFAULT_THRESHOLD) -> None:
        self.path = path
        # The default threshold, for the alert states of a file from before alerts (schema.py).
        self.low_stock_threshold = low_stock_threshold
        self._conn: aiosqlite.Connection | None = None
        # The change records this process committed and the relay has not taken yet, by seq: it
        # publishes them right after the commit, and taking them from here spares it decoding
        # each payload back into the record it was encoded from. Bounded: past WRITTEN_KEPT (a
        # relay held up) the relay decodes the stored payloads as after a restart.
        self._written: dict[int, Change] = {}
        # Held for each write transaction. The relay and the expiry publisher share the writer's
        # connection, on which an open transaction's rows are visible: they take it, so they
        # never read (and publish) changes that may still roll back, nor write into another
        # task's transaction.
        self._transaction_lock = asyncio.Lock()

    def take_written(self, seq: int) -> Change | None:
        """The change record committed as ``seq`` by this process, once; None if not kept."""
        return self._written.pop(seq, None)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await open_writer(str(self.path), low_stock_threshold=self.low_stock_threshold)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("inventory store is not open")
        return self._conn

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def _committed(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """``_all`` for other tasks than the listener's: committed rows only."""
        async with self._transaction_lock:
            return await self._all(sql, params)

    # --- reads ---------------------------------------------------------------------------

    async def positions(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        rows = await self._all("SELECT topic, partition, next_offset FROM consumer_positions")
        wanted = set(tps)
        return {(t, p): o for t, p, o in rows if (t, p) in wanted}

    async def processed(self, event_ids: Iterable[str]) -> set[str]:
        rows = await self._all(
            "SELECT event_id FROM processed_events WHERE event_id IN (SELECT value FROM json_each(?))",
            (_ids(event_ids),),
        )
        return {row[0] for row in rows}

    async def load(self, events: Sequence[Event]) -> Loaded:
        """The items of a batch with just what its events touch (and those of the events parked
        behind them): the levels, transfers and reservations they name, the open anonymous
        reservations a plain release may give back, the owners of the SKUs it creates, and its
        parked events."""
        item_ids = _ids(e.item_id for e in events)
        skus = _ids(e.data.sku for e in events if hasattr(e.data, "sku"))  # creates only
        owners = await self._all(
            "SELECT sku, id FROM items WHERE deleted_at IS NULL AND sku IN (SELECT value FROM json_each(?))",
            (skus,),
        )
        parked_rows = await self._all(
            "SELECT id, item_id, value, deadline FROM parked_events "
            "WHERE item_id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (item_ids,),
        )
        parked: dict[str, list[ParkedEvent]] = {}
        for row_id, item_id, value, deadline in parked_rows:
            parked.setdefault(item_id, []).append(ParkedEvent(row_id, decode_event(value), value, deadline))
        everything = [*events, *(p.event for waiting in parked.values() for p in waiting)]
        named: dict[str, set[str]] = {"transfer": set(), "reservation": set()}
        to_release: dict[tuple[str, str], int] = {}
        for event in everything:
            spec = BY_EVENT_TYPE[event.event_type]
            if spec.record is not None:
                named[spec.record.kind].add(spec.record.id_of(event))
            if spec.releases_anonymous:
                pair = (event.item_id, event.location)
                to_release[pair] = to_release.get(pair, 0) + int(getattr(event.data, "quantity", 0))
        transfer_rows = await self._all(TRANSFERS_BY_IDS, (_ids(named["transfer"]),)) if named["transfer"] else []
        reservation_rows = (
            await self._all(RESERVATIONS_BY_IDS, (_ids(named["reservation"]),)) if named["reservation"] else []
        )
        if to_release:
            pairs = json.dumps(sorted(to_release))
            reservation_rows += await self._all(ANONYMOUS_TO_RELEASE, (pairs, max(to_release.values())))
        touched = {(e.item_id, location) for e in everything for location in BY_EVENT_TYPE[e.event_type].touches(e)}
        # The locations of the records the batch names: a receive moves stock at its transfer's
        # destination, a commit at its reservation's location.
        touched |= {(row[1], row[2]) for row in transfer_rows} | {(row[1], row[3]) for row in transfer_rows}
        touched |= {(row[1], row[2]) for row in reservation_rows}
        items = assemble_items(
            await self._all(ITEMS_BY_IDS, (item_ids,)),
            await self._all(LEVELS_WITH_ALERT_BY_PAIRS, (json.dumps(sorted(touched)),)),
            transfer_rows,
            reservation_rows,
        )
        return Loaded(items=items, sku_owners={sku: item_id for sku, item_id in owners}, parked=parked)

    async def all_levels(self, item_ids: Sequence[str]) -> dict[str, Item]:
        """Items with every one of their levels (the cache refill, the rebuild's comparison)."""
        ids = _ids(item_ids)
        return assemble_items(await self._all(ITEMS_BY_IDS, (ids,)), await self._all(LEVELS_BY_IDS, (ids,)))

    async def expired_parked(self, now_epoch: float) -> list[ParkedEvent]:
        rows = await self._all(
            "SELECT id, value, deadline FROM parked_events WHERE deadline <= ? ORDER BY id", (now_epoch,)
        )
        expired = []
        for row_id, value, deadline in rows:
            try:
                expired.append(ParkedEvent(row_id, decode_event(value), value, deadline))
            except PoisonMessage:  # pragma: no cover - it was decoded once before parking
                continue
        return expired

    async def due_reservations(self, now: str, limit: int) -> list[tuple[str, str, str, str]]:
        """(reservation id, item id, location, expires_at) of open reservations due by ``now``, of
        live items, soonest first."""
        rows = await self._committed(
            "SELECT r.id, r.item_id, r.location, r.expires_at FROM reservations r JOIN items i ON i.id = r.item_id "
            "WHERE r.state = 'open' AND r.expires_at IS NOT NULL AND r.expires_at <= ? AND i.deleted_at IS NULL "
            "ORDER BY r.expires_at LIMIT ?",
            (now, limit),
        )
        return [(a, b, c, d) for a, b, c, d in rows]

    async def unsent_changes(self, limit: int) -> list[tuple[int, str]]:
        rows = await self._committed(
            f"SELECT seq, payload FROM changes WHERE seq > ({PUBLISHED_SEQ}) ORDER BY seq LIMIT ?", (limit,)
        )
        return [(seq, payload) for seq, payload in rows]

    async def changes_after(self, seq: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._committed(
            "SELECT seq, payload FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(s, payload) for s, payload in rows]

    async def items_page(self, after_id: str, limit: int) -> list[Item]:
        """Items in id order (deleted ones too, as tombstones), for a full refresh of the cache."""
        async with self._transaction_lock:
            rows = await self._all("SELECT id FROM items WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
            items = await self.all_levels([row[0] for row in rows])
        return [items[row[0]] for row in rows]

    async def last_seq(self) -> int:
        rows = await self._all("SELECT COALESCE(MAX(seq), 0) FROM changes")
        return int(rows[0][0])

    async def unsent_count(self) -> int:
        rows = await self._committed(f"SELECT COUNT(*) FROM changes WHERE seq > ({PUBLISHED_SEQ})")
        return int(rows[0][0])

    # --- writes --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction: committed if the block ends normally, rolled back otherwise."""
        conn = self.conn
        async with self._transaction_lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                raise

    async def prune(
        self, *, changes_before: str, processed_before: int, limit: int, keep_after: int | None = None
    ) -> Pruned:
        """Forget published changes created before ``changes_before`` (RFC 3339) and processed
        event ids applied before ``processed_before`` (epoch seconds), at most ``limit`` of each.
        Changes after ``keep_after`` are kept whatever their age: a reader of the outbox (the
        webhook fan-out) has not taken them yet.

        Small rounds keep the write lock short: the listener prunes between batches.
        """
        async with self._transaction() as conn:
            # seq and created_at grow together, so the first recent row bounds the range and the
            # scan never walks the recent part of the table.
            changes = await conn.execute(
                "DELETE FROM changes WHERE seq IN (SELECT seq FROM changes "
                f"WHERE seq <= ({PUBLISHED_SEQ}) AND seq < COALESCE("
                "(SELECT seq FROM changes WHERE created_at >= ? ORDER BY seq LIMIT 1), 9223372036854775807) "
                "AND seq <= COALESCE(?, 9223372036854775807) "
                "ORDER BY seq LIMIT ?)",
                (changes_before, keep_after, limit),
            )
            processed = await conn.execute(
                "DELETE FROM processed_events WHERE event_id IN "
                "(SELECT event_id FROM processed_events WHERE applied_at < ? LIMIT ?)",
                (processed_before, limit),
            )
        return Pruned(changes=changes.rowcount, processed_events=processed.rowcount)

    async def mark_sent(self, up_to_seq: int) -> None:
        if len(self._written) > WRITTEN_KEPT // 2:
            # Records the relay never took (it decoded them from the table, as after a restart)
            # must not fill the room.
            self._written = {seq: change for seq, change in self._written.items() if seq > up_to_seq}
        async with self._transaction_lock:
            await self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('published_seq', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                "WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(up_to_seq),),
            )

    async def write(
        self,
        plan: Plan,
        *,
        expected_positions: dict[TopicPartition, int | None],
        dead_letters: Sequence[DeadLetter] = (),
        replayed: Sequence[int] = (),
    ) -> None:
        """Write one batch in one transaction, or raise Conflict and write nothing."""
        now = utc_now()
        try:
            async with self._transaction() as conn:
                await self._guard_positions(expected_positions)
                await self._write_items(plan)
                await self._write_levels(plan)
                await self._write_records(plan)
                await conn.executemany(
                    "INSERT INTO history (item_id, event_type, location, quantity_delta, reserved_delta, "
                    "quantity_after, reserved_after, item_version, actor, command_id, event_id, note, "
                    "occurred_at, applied_at, reason, reference, expected) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            h.item_id, h.event_type, h.location, h.quantity_delta, h.reserved_delta,
                            h.quantity_after, h.reserved_after, h.item_version, h.actor, h.command_id,
                            h.event_id, h.note, h.occurred_at, now, h.reason, h.reference, h.expected,
                        )
                        for h in plan.history
                    ],
                )  # fmt: skip
                await conn.executemany(
                    "INSERT OR IGNORE INTO command_outcomes (command_id, item_id, event_type, location, status, "
                    "reason, message, version, actor, submitted_at, processed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            o.command_id, o.item_id, o.event_type, o.location, o.status, o.reason,
                            o.message, o.version, o.actor, o.submitted_at, now,
                        )
                        for o in plan.outcomes
                    ],
                )  # fmt: skip
                applied_at = int(time.time())
                await conn.executemany(
                    "INSERT INTO processed_events (event_id, applied_at) VALUES (?, ?)",
                    [(eid, applied_at) for eid in plan.processed],
                )
                await conn.executemany(
                    "INSERT INTO parked_events (item_id, event_id, value, parked_at, deadline) VALUES (?, ?, ?, ?, ?)",
                    [(p.event.item_id, p.event.event_id, p.value, now, p.deadline) for p in plan.parked],
                )
                await conn.executemany("DELETE FROM parked_events WHERE id = ?", [(pid,) for pid in plan.unparked])
                alerts = await self._write_alerts(plan, now)
                changes: list[Change] = [
                    *plan.item_changes(
                        alerts,
                        first_history_id=await self._first_id("history", len(plan.history)),
                        applied_at=now,
                        reservation_seqs=await self._reservation_seqs(plan),
                    ),
                    *(o.change(now) for o in plan.outcomes),
                ]
                await conn.executemany(
                    "INSERT INTO changes (kind, item_id, payload, created_at) VALUES (?, ?, ?, ?)",
                    [(c.kind, c.item_id, encode_text(c), now) for c in changes],
                )
                first_seq = await self._first_id("changes", len(changes))
                await conn.executemany(
                    'INSERT OR IGNORE INTO dead_letters (topic, partition, "offset", key, value, headers, error, '
                    "attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            d.topic, d.partition, d.offset, d.key, d.value,
                            json.dumps([[k, v.decode("latin-1")] for k, v in d.headers]), d.error, d.attempts, now,
                        )
                        for d in dead_letters
                    ],
                )  # fmt: skip
                await conn.executemany(
                    "UPDATE dead_letters SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL",
                    [(now, letter_id) for letter_id in replayed],
                )
                await conn.executemany(
                    "INSERT INTO consumer_positions (topic, partition, next_offset) VALUES (?, ?, ?) "
                    "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                    [(t, p, o) for (t, p), o in plan.positions.items()],
                )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"unique key taken meanwhile: {exc}") from None
        # Only once committed: a rolled-back batch's numbers are taken again by the next one.
        if changes and len(self._written) + len(changes) <= WRITTEN_KEPT:
            self._written.update(zip(range(first_seq, first_seq + len(changes)), changes, strict=True))

    async def _guard_positions(self, expected: dict[TopicPartition, int | None]) -> None:
        """Positions must be what the batch was planned against, or another writer got there first."""
        if not expected:
            return
        stored = await self.positions(list(expected))
        for tp, position in expected.items():
            if stored.get(tp) != position:
                raise Conflict(f"{tp[0]}[{tp[1]}] moved to {stored.get(tp)} since it was read")

    async def _write_items(self, plan: Plan) -> None:
        conn = self.conn
        # Changed rows first: a delete frees its SKU (the live-SKU index), which an item created
        # in the same batch may take.
        updates = []
        stock_updates = []
        for i, base in plan.changed_items.values():
            loaded = plan.loaded_items.get(i.id)
            if loaded is not None and _same_identity(loaded, i):
                # Naming only the stock columns spares SQLite the SKU and name indexes and the
                # search trigger, which an UPDATE maintains for every column it names.
                stock_updates.append((i.version, i.updated_at, i.quantity, i.reserved, i.in_transit, i.id, base))
                continue
            updates.append(
                (
                    i.sku,
                    i.name,
                    i.description,
                    i.version,
                    i.updated_at,
                    i.deleted_at,
                    i.low_stock_threshold,
                    i.quantity,
                    i.reserved,
                    i.in_transit,
                    i.id,
                    base,
                )
            )
        if updates:
            cursor = await conn.executemany(
                "UPDATE items SET sku = ?, name = ?, description = ?, version = ?, updated_at = ?, deleted_at = ?, "
                "low_stock_threshold = ?, quantity = ?, reserved = ?, in_transit = ? WHERE id = ? AND version = ?",
                updates,
            )
            if cursor.rowcount != len(updates):
                raise Conflict("an item's version moved on since it was read")
        if stock_updates:
            cursor = await conn.executemany(
                "UPDATE items SET version = ?, updated_at = ?, quantity = ?, reserved = ?, in_transit = ? "
                "WHERE id = ? AND version = ?",
                stock_updates,
            )
            if cursor.rowcount != len(stock_updates):
                raise Conflict("an item's version moved on since it was read")
        await conn.executemany(
            f"INSERT INTO items ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i.id,
                    i.sku,
                    i.name,
                    i.description,
                    i.version,
                    i.created_at,
                    i.updated_at,
                    i.deleted_at,
                    i.low_stock_threshold,
                    i.quantity,
                    i.reserved,
                    i.in_transit,
                )
                for i in plan.new_items.values()
            ],
        )

    async def _write_levels(self, plan: Plan) -> None:
        conn = self.conn
        # The planner decided every changed level's alert state; "ok" only stands in for a level
        # a plan made without deciding it (none does).
        inserts = [
            (item_id, lv.location, lv.quantity, lv.reserved, lv.version, lv.updated_at, lv.alert or "ok")
            for (item_id, _), (lv, base) in plan.levels.items()
            if base is None
        ]
        updates = [
            (lv.quantity, lv.reserved, lv.version, lv.updated_at, lv.alert or "ok", item_id, lv.location, base)
            for (item_id, _), (lv, base) in plan.levels.items()
            if base is not None
        ]
        await conn.executemany(
            "INSERT INTO stock_levels (item_id, location, quantity, reserved, version, updated_at, alert) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        if updates:
            cursor = await conn.executemany(
                "UPDATE stock_levels SET quantity = ?, reserved = ?, version = ?, updated_at = ?, alert = ? "
                "WHERE item_id = ? AND location = ? AND version = ?",
                updates,
            )
            if cursor.rowcount != len(updates):
                raise Conflict("a stock level's version moved on since it was read")

    async def _write_alerts(self, plan: Plan, now: str) -> list[StockAlert]:
        """The batch's alerts, numbered by their rows. This transaction is the only writer and
        ids are AUTOINCREMENT, so the rows it inserts take the numbers after the last one, in
        order: one insert for them all (a count import can raise thousands) and one read."""
        if not plan.alerts:
            return []
        await self.conn.executemany(
            "INSERT INTO alerts (item_id, sku, location, kind, available, threshold, command_id, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (a.item_id, a.sku, a.location, a.kind.value, a.available, a.threshold, a.command_id, now)
                for a in plan.alerts
            ],
        )
        first = await self._first_id("alerts", len(plan.alerts))
        return [alert.record(first + n, now) for n, alert in enumerate(plan.alerts)]

    async def _first_id(self, table: str, inserted: int) -> int:
        """The number of the first of the ``inserted`` rows this transaction just added to an
        AUTOINCREMENT table: the only writer's rows take the numbers after the last, in order."""
        if not inserted:
            return 0
        rows = await self._all("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,))
        return int(rows[0][0]) - inserted + 1

    async def _reservation_seqs(self, plan: Plan) -> dict[str, int]:
        """The order number of each reservation the batch made or changed (for replicas)."""
        if not plan.reservations:
            return {}
        rows = await self._all(
            "SELECT id, seq FROM reservations WHERE id IN (SELECT value FROM json_each(?))", (_ids(plan.reservations),)
        )
        return {str(rid): int(seq) for rid, seq in rows}

    async def _write_records(self, plan: Plan) -> None:
        """Transfers and reservations the batch made or changed. They change only with their item,
        whose version guard (``_write_items``) already stops a stale plan, and the load read every
        record a batch names, so a plan never makes one that exists: the upsert only saves
        telling a new record from a changed one."""
        conn = self.conn
        await conn.executemany(
            "INSERT INTO transfers (id, item_id, from_location, to_location, quantity, state, shipped_at, received, "
            "closed_at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "state = excluded.state, received = excluded.received, closed_at = excluded.closed_at",
            [
                (t.id, t.item_id, t.from_location, t.to_location, t.quantity, t.state.value, t.shipped_at, t.received,
                 t.closed_at, t.note)
                for t in plan.transfers.values()
            ],
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO reservations (id, item_id, location, quantity, reserved, state, created_at, reference, "
            "expires_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "quantity = excluded.quantity, state = excluded.state, closed_at = excluded.closed_at",
            [
                (r.id, r.item_id, r.location, r.quantity, r.reserved, r.state.value, r.created_at, r.reference,
                 r.expires_at, r.closed_at)
                for r in plan.reservations.values()
            ],
        )  # fmt: skip
