"""webhooks.db: the endpoints admins registered, their deliveries, and the dispatcher's cursor.

Its own SQLite file in the data directory, like users.db: the admin API and page (any role)
register and change endpoints, the dispatcher (listener role) fans changes out and records
attempts. Every change that must be all-or-nothing runs in one BEGIN IMMEDIATE transaction, above
all a fan-out: the deliveries of a range of changes and the cursor past them commit together, so
a crash neither loses nor repeats one (delivery ids are also derived from the endpoint and the
change, so a repeated fan-out could only insert what is already there).

One connection serves every coroutine of the process (the dispatcher's fan-out and workers, the
admin API): every write goes through one lock. Without it, two coroutines' transactions on the
one connection interleave: the second BEGIN fails, its ROLLBACK undoes the first's writes (marks
of deliveries already sent, which were then sent again) and the first's COMMIT fails.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from app.clock import utc_now
from app.http.internal_calls import Surface
from app.sqlitefiles import open_read_write

SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    -- Event kinds, comma-separated (app/domain/webhooks.py EVENT_KINDS).
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    paused_reason TEXT,
    created_at TEXT NOT NULL,
    -- Dead deliveries in a row (a delivery resets it): the pause rule counts these.
    consecutive_dead INTEGER NOT NULL DEFAULT 0,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt_at TEXT
);
CREATE TABLE IF NOT EXISTS deliveries (
    -- Insertion order: the order deliveries of one item are sent in.
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    endpoint_id TEXT NOT NULL,
    type TEXT NOT NULL,
    item_id TEXT NOT NULL,
    -- The exact bytes signed and sent, the same on every attempt.
    body BLOB NOT NULL,
    seq INTEGER NOT NULL,
    committed_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_lanes ON deliveries (endpoint_id, state, item_id, n);
CREATE INDEX IF NOT EXISTS deliveries_order ON deliveries (endpoint_id, state, n);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (endpoint_id, state, next_attempt_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

CURSOR = "fanned_out_seq"
# A uuid5 namespace for delivery ids: one id per endpoint, change and event of the change.
DELIVERY_IDS = uuid.UUID("6f1c1c2e-9a0b-4f4e-9a3c-2f8d51b7e001")
DELIVERY_COLUMNS = (
    "id, endpoint_id, type, item_id, body, seq, committed_at, state, attempts, next_attempt_at, "
    "last_status, last_error, created_at, delivered_at"
)


class WebhookNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    state: str
    paused_reason: str | None
    created_at: str
    consecutive_dead: int
    delivered: int
    failed_attempts: int
    dead: int
    last_error: str | None
    last_attempt_at: str | None

    def wants(self, kind: str) -> bool:
        return kind in self.events


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    type: str
    item_id: str
    body: bytes
    seq: int
    committed_at: str
    state: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


@dataclass(frozen=True)
class NewDelivery:
    endpoint_id: str
    id: str
    type: str
    item_id: str
    body: bytes
    seq: int
    committed_at: str


def delivery_id(endpoint_id: str, seq: int, index: int) -> str:
    return str(uuid.uuid5(DELIVERY_IDS, f"{endpoint_id}:{seq}:{index}"))


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _endpoint(row: Sequence[Any]) -> Endpoint:
    (id_, url, events, secret, state, reason, created, consecutive, delivered, failed, dead, error, at) = row
    return Endpoint(
        id_, url, tuple(e for e in events.split(",") if e), secret, state, reason, created,
        consecutive, delivered, failed, dead, error, at,
    )  # fmt: skip


def _delivery(row: Sequence[Any]) -> Delivery:
    values = list(row)
    values[4] = bytes(values[4])
    return Delivery(*values)


ENDPOINT_COLUMNS = (
    "id, url, events, secret, state, paused_reason, created_at, consecutive_dead, delivered, failed_attempts, "
    "dead, last_error, last_attempt_at"
)


class WebhookStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        # Writes (transactions and single statements) one at a time: see the module's docstring.
        self._writing = asyncio.Lock()

    async def open(self) -> None:
        self._conn = await open_read_write(self.path)
        await self._conn.executescript(SCHEMA)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("webhook store is not open")
        return self._conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._writing:
            db = self._db
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in autocommit, never inside another coroutine's transaction; its rowcount."""
        async with self._writing:
            cursor = await self._db.execute(sql, params)
            return cursor.rowcount

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    # --- endpoints ---------------------------------------------------------------------------

    async def add_endpoint(self, url: str, events: Iterable[str], secret: str) -> Endpoint:
        endpoint_id = str(uuid.uuid4())
        await self._write(
            "INSERT INTO endpoints (id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?)",
            (endpoint_id, url, ",".join(events), secret, utc_now()),
        )
        return await self.endpoint(endpoint_id)

    async def endpoints(self) -> list[Endpoint]:
        rows = await self._rows(f"SELECT {ENDPOINT_COLUMNS} FROM endpoints ORDER BY created_at, id")
        return [_endpoint(row) for row in rows]

    async def endpoint(self, endpoint_id: str) -> Endpoint:
        rows = await self._rows(f"SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?", (endpoint_id,))
        if not rows:
            raise WebhookNotFound(endpoint_id)
        return _endpoint(rows[0])

    async def remove(self, endpoint_id: str) -> None:
        async with self._transaction() as db:
            cursor = await db.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))
            if cursor.rowcount == 0:
                raise WebhookNotFound(endpoint_id)
            await db.execute("DELETE FROM deliveries WHERE endpoint_id = ?", (endpoint_id,))

    async def pause(self, endpoint_id: str, reason: str) -> None:
        await self._write(
            "UPDATE endpoints SET state = 'paused', paused_reason = ? WHERE id = ?", (reason, endpoint_id)
        )

    async def resume(self, endpoint_id: str) -> Endpoint:
        """Active again, its dead-in-a-row count forgotten; its pending deliveries go at once."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE endpoints SET state = 'active', paused_reason = NULL, consecutive_dead = 0 WHERE id = ?",
                (endpoint_id,),
            )
            if cursor.rowcount == 0:
                raise WebhookNotFound(endpoint_id)
            await db.execute(
                "UPDATE deliveries SET next_attempt_at = 0 WHERE endpoint_id = ? AND state = 'pending'",
                (endpoint_id,),
            )
        return await self.endpoint(endpoint_id)

    async def counts(self) -> dict[str, dict[str, int]]:
        """Deliveries by endpoint and state."""
        rows = await self._rows("SELECT endpoint_id, state, COUNT(*) FROM deliveries GROUP BY endpoint_id, state")
        counts: dict[str, dict[str, int]] = {}
        for endpoint_id, state, count in rows:
            counts.setdefault(endpoint_id, {})[state] = int(count)
        return counts

    # --- fan-out ---------------------------------------------------------------------------

    async def cursor(self) -> int:
        rows = await self._rows("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", (CURSOR,))
        return int(rows[0][0]) if rows else 0

    async def fan_out(self, after: int, up_to: int, deliveries: Sequence[NewDelivery]) -> bool:
        """Store the deliveries of the changes in (after, up_to] and move the cursor to ``up_to``,
        in one transaction. False (nothing written) when the cursor is no longer ``after``."""
        async with self._transaction() as db:
            async with db.execute("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", (CURSOR,)) as cursor:
                row = await cursor.fetchone()
            if (int(row[0]) if row else 0) != after:
                return False
            now = utc_now()
            await db.executemany(
                "INSERT OR IGNORE INTO deliveries "
                "(id, endpoint_id, type, item_id, body, seq, committed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(d.id, d.endpoint_id, d.type, d.item_id, d.body, d.seq, d.committed_at, now) for d in deliveries],
            )
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (CURSOR, str(up_to)),
            )
        return True

    # --- delivery ----------------------------------------------------------------------------

    async def due(self, endpoint_id: str, now: float, limit: int) -> list[Delivery]:
        """The deliveries to attempt now: of each item only its oldest pending one (later ones of
        that item wait behind it: order per item), and only once its backoff has passed."""
        # Walks the pending deliveries in order (deliveries_order) and stops after ``limit``
        # heads: with a backlog the first rows are heads of distinct items, so it reads few. The
        # unary + keeps SQLite from choosing deliveries_due and sorting the whole backlog.
        rows = await self._rows(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.endpoint_id = ?1 AND d.state = 'pending' "
            "AND +d.next_attempt_at <= ?2 AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.endpoint_id = ?1 "
            "AND p.state = 'pending' AND p.item_id = d.item_id AND p.n < d.n) ORDER BY d.n LIMIT ?3",
            (endpoint_id, now, limit),
        )
        return [_delivery(row) for row in rows]

    async def delivered(self, delivery: Delivery, status: int) -> None:
        await self.delivered_all([(delivery, status)])

    async def delivered_all(self, answered: Sequence[tuple[Delivery, int]]) -> None:
        """Mark deliveries the receiver accepted (with its status), in one transaction: a round
        of a worker costs one commit, not one per delivery."""
        if not answered:
            return
        now = utc_now()
        per_endpoint: dict[str, int] = {}
        for delivery, _ in answered:
            per_endpoint[delivery.endpoint_id] = per_endpoint.get(delivery.endpoint_id, 0) + 1
        async with self._transaction() as db:
            await db.executemany(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, last_status = ?, "
                "last_error = NULL, delivered_at = ? WHERE id = ? AND state = 'pending'",
                [(status, now, delivery.id) for delivery, status in answered],
            )
            await db.executemany(
                "UPDATE endpoints SET delivered = delivered + ?, consecutive_dead = 0, last_attempt_at = ? "
                "WHERE id = ?",
                [(count, now, endpoint_id) for endpoint_id, count in per_endpoint.items()],
            )

    async def failed(
        self,
        delivery: Delivery,
        *,
        status: int | None,
        error: str,
        dead: bool,
        next_attempt_at: float,
        pause_after: int,
        pause_reason: str | None = None,
    ) -> bool:
        """Record a failed attempt: pending again after ``next_attempt_at``, or dead. The endpoint
        is paused when ``pause_reason`` is given (410 Gone) or when this makes ``pause_after``
        dead deliveries in a row. True when the endpoint was paused."""
        now = utc_now()
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_status = ?, "
                "last_error = ? WHERE id = ?",
                ("dead" if dead else "pending", next_attempt_at, status, error[:500], delivery.id),
            )
            await db.execute(
                "UPDATE endpoints SET failed_attempts = failed_attempts + 1, dead = dead + ?, "
                "consecutive_dead = consecutive_dead + ?, last_error = ?, last_attempt_at = ? WHERE id = ?",
                (int(dead), int(dead), error[:500], now, delivery.endpoint_id),
            )
            if pause_reason is None and dead:
                async with db.execute(
                    "SELECT consecutive_dead FROM endpoints WHERE id = ?", (delivery.endpoint_id,)
                ) as cursor:
                    row = await cursor.fetchone()
                if row is not None and int(row[0]) >= pause_after:
                    pause_reason = f"{row[0]} deliveries in a row went dead"
            if pause_reason is not None:
                await db.execute(
                    "UPDATE endpoints SET state = 'paused', paused_reason = ? WHERE id = ? AND state = 'active'",
                    (pause_reason, delivery.endpoint_id),
                )
        return pause_reason is not None

    async def deliveries(self, endpoint_id: str, *, state: str | None = None, limit: int = 50) -> list[Delivery]:
        rows = await self._rows(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE endpoint_id = ? AND (?2 IS NULL OR state = ?2) "
            "ORDER BY n DESC LIMIT ?3",
            (endpoint_id, state, limit),
        )
        return [_delivery(row) for row in rows]

    async def redeliver(self, endpoint_id: str, delivery_id: str) -> Delivery:
        """A dead (or delivered) delivery sent again, with the same id and body, attempts from zero."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = 0, delivered_at = NULL "
                "WHERE id = ? AND endpoint_id = ?",
                (delivery_id, endpoint_id),
            )
            if cursor.rowcount == 0:
                raise WebhookNotFound(delivery_id)
        rows = await self._rows(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,))
        return _delivery(rows[0])

    async def pending_total(self) -> int:
        rows = await self._rows("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'")
        return int(rows[0][0])

    async def prune_delivered(self, before: str, limit: int = 10_000) -> int:
        """Forget delivered deliveries older than ``before`` (RFC 3339); dead ones stay until
        redelivered or their endpoint is removed."""
        return await self._write(
            "DELETE FROM deliveries WHERE n IN (SELECT n FROM deliveries WHERE state = 'delivered' "
            "AND delivered_at < ? LIMIT ?)",
            (before, limit),
        )


# What a node may call of the listener's webhooks.db (app/http/internal_calls.py): the methods
# of the admin API, the page and the pending-deliveries metric. Fan-out and delivery stay with
# the dispatcher, on the listener.
CALLS = (
    "add_endpoint", "endpoints", "endpoint", "remove", "pause", "resume", "counts", "deliveries", "redeliver",
    "pending_total",
)  # fmt: skip
SURFACE = Surface(
    WebhookStore,
    frozenset(CALLS),
    errors=(WebhookNotFound,),
)
