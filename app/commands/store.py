"""The command service's own file: commands it accepted, and stored answers for idempotent retries.

Only the command service writes it. The query service reads it (read-only) to tell a pending
command from an unknown one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from app.metrics import track_size
from app.sqlitefiles import open_read_write

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted_commands (
    command_id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    sku TEXT,
    actor TEXT NOT NULL,
    request_id TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    -- publishing until the log acknowledged, then published; failed when the client got a 503
    state TEXT NOT NULL DEFAULT 'publishing',
    topic TEXT NOT NULL,
    event BLOB NOT NULL,
    idem_scope TEXT,
    idem_key TEXT,
    request_hash TEXT,
    idem_expires REAL,
    response_status INTEGER,
    response_headers TEXT,
    response_body BLOB
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS accepted_idempotency ON accepted_commands (idem_scope, idem_key)
    WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS accepted_creates ON accepted_commands (sku) WHERE sku IS NOT NULL;
CREATE INDEX IF NOT EXISTS accepted_items ON accepted_commands (item_id, event_type);
"""


# Returns a connection to the commands file, or None while it does not exist yet.
ConnFactory = Callable[[], Awaitable[aiosqlite.Connection | None]]


@dataclass(frozen=True)
class AcceptedCommand:
    command_id: str
    item_id: str
    event_type: str
    sku: str | None
    actor: str
    request_id: str
    submitted_at: str
    state: str
    topic: str
    event: bytes
    idem_scope: str | None = None
    idem_key: str | None = None
    request_hash: str | None = None
    idem_expires: float | None = None
    response_status: int | None = None
    response_headers: dict[str, str] | None = None
    response_body: bytes | None = None


COLUMNS = (
    "command_id, item_id, event_type, sku, actor, request_id, submitted_at, state, topic, event, "
    "idem_scope, idem_key, request_hash, idem_expires, response_status, response_headers, response_body"
)


def _row_to_command(row: aiosqlite.Row | tuple[object, ...]) -> AcceptedCommand:
    values = list(row)
    headers = values[15]
    values[15] = json.loads(headers) if isinstance(headers, str) else None
    return AcceptedCommand(*values)


class IdempotencyKeyTaken(RuntimeError):
    """Another request with the same key was recorded first."""


class CommandKeys(Protocol):
    """Where a command service keeps its Idempotency-Keys: the record a key names (its request
    hash, command and event) and the answer once there is one. This process's own commands.db
    (``CommandStore``), or Redis (app/commands/redis_store.py) when several command nodes must
    agree on one record per key."""

    async def find(self, scope: str, key: str) -> AcceptedCommand | None:
        """The live record of ``key`` (with its saved answer, if any), or None."""
        ...

    async def claim(self, command: AcceptedCommand) -> None:
        """Record ``command`` under its key; IdempotencyKeyTaken if the key already has one."""
        ...

    async def keep_reply(self, command: AcceptedCommand, status: int, headers: dict[str, str], body: bytes) -> None:
        """The answer every retry of ``command`` gets back."""
        ...


# The statement, its parameters, whether its commit must reach the disk, and who waits for it.
_Write = tuple[str, tuple[Any, ...], bool, asyncio.Future[None]]


class _GroupWriter:
    """The commands file's one writer: a thread of its own that commits the writes of concurrent
    requests in one transaction, and wakes the event loop once per commit.

    Each step of a transaction sent through aiosqlite (begin, savepoint, insert, release, commit)
    came back through the event loop before the next could start; under load the loop is busy
    with requests, so a commit took several of its turns. Here the whole transaction runs on the
    thread. Consecutive statements with the same SQL go to SQLite as one ``executemany``; a unique
    key that is taken fails only its own statement (the run is replayed one statement at a time,
    each in its own savepoint, so the others still commit).

    A commit waits for the disk only when one of its writes asks for it (``durable``): an
    Idempotency-Key's record and answer must survive a power cut, or a retry could publish a
    second event. The status record of a command without a key is written once its event is in
    the log; it must be visible to every reader before the 202 (a commit is), and losing the last
    of them to a power cut costs a status that reads 404 until the listener's outcome answers for
    it, as when recording it fails.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pending: list[_Write] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # One entry per write in progress; each commit takes all of them.
        track_size("group_commit_writes", None, lambda: len(self._pending))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(opened,), name="commands-writer", daemon=True)
        self._thread.start()
        await opened

    async def stop(self) -> None:
        """Commit what was queued, then end the thread."""
        with self._lock:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def execute(self, sql: str, params: tuple[Any, ...], *, durable: bool = True) -> None:
        """Return once the statement is committed; raise IntegrityError if it broke a constraint."""
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        with self._lock:
            if self._stopping:
                raise RuntimeError("command store is closed")
            self._pending.append((sql, params, durable, future))
            if len(self._pending) == 1:
                self._wake.notify()
        await future

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def _run(self, opened: asyncio.Future[None]) -> None:
        assert self._loop is not None
        try:
            conn = self._connect()
        except BaseException as exc:
            self._loop.call_soon_threadsafe(_settle_one, opened, exc)
            return
        self._loop.call_soon_threadsafe(_settle_one, opened, None)
        try:
            while True:
                with self._lock:
                    while not self._pending and not self._stopping:
                        self._wake.wait()
                    batch, self._pending = self._pending, []
                if not batch:
                    return
                outcome = _commit(conn, batch)
                self._loop.call_soon_threadsafe(_settle_batch, batch, outcome)
        except BaseException as exc:
            # Nothing commits any more: refuse what waits and what comes, rather than hang them.
            log.exception("the writer of accepted commands stopped")
            with self._lock:
                self._stopping = True
                batch, self._pending = self._pending, []
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                self._loop.call_soon_threadsafe(_settle_batch, batch, dict.fromkeys(range(len(batch)), exc))
            raise
        finally:
            conn.close()


def _settle_one(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


def _settle_batch(batch: list[_Write], outcome: dict[int, BaseException]) -> None:
    for n, (_, _, _, future) in enumerate(batch):
        _settle_one(future, outcome.get(n))


def _commit(conn: sqlite3.Connection, batch: list[_Write]) -> dict[int, BaseException]:
    """Commit the batch; the statements that failed, by their place in it."""
    failed: dict[int, BaseException] = {}
    try:
        durable = any(write[2] for write in batch)
        conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        start = 0
        while start < len(batch):
            end = start + 1
            while end < len(batch) and batch[end][0] == batch[start][0]:
                end += 1
            failed |= _write_run(conn, batch, start, end)
            start = end
        conn.execute("COMMIT")
    except Exception as exc:
        log.exception("group commit of accepted commands failed")
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        return dict.fromkeys(range(len(batch)), exc)
    return failed


def _write_run(conn: sqlite3.Connection, batch: list[_Write], start: int, end: int) -> dict[int, BaseException]:
    sql = batch[start][0]
    conn.execute("SAVEPOINT run")
    try:
        conn.executemany(sql, [batch[n][1] for n in range(start, end)])
        conn.execute("RELEASE run")
        return {}
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO run")
        conn.execute("RELEASE run")
    failed: dict[int, BaseException] = {}
    for n in range(start, end):
        conn.execute("SAVEPOINT one")
        try:
            conn.execute(sql, batch[n][1])
            conn.execute("RELEASE one")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK TO one")
            conn.execute("RELEASE one")
            failed[n] = exc
    return failed


class CommandStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._writer: _GroupWriter | None = None

    async def open(self) -> None:
        self._conn = await open_read_write(self.path)
        await self._conn.executescript(SCHEMA)
        self._writer = _GroupWriter(self.path)
        await self._writer.start()

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("command store is not open")
        return self._conn

    async def connection(self) -> aiosqlite.Connection | None:
        return self._conn

    async def record(self, command: AcceptedCommand) -> None:
        """Record an accepted command; raise IdempotencyKeyTaken if its key is already recorded."""
        assert self._writer is not None
        try:
            await self._writer.execute(
                f"INSERT INTO accepted_commands ({COLUMNS}) VALUES ({', '.join('?' * 17)})",
                (
                    command.command_id, command.item_id, command.event_type, command.sku, command.actor,
                    command.request_id, command.submitted_at, command.state, command.topic, command.event,
                    command.idem_scope, command.idem_key, command.request_hash, command.idem_expires,
                    None, None, None,
                ),
                durable=command.idem_key is not None,
            )  # fmt: skip
        except sqlite3.IntegrityError:
            raise IdempotencyKeyTaken(command.idem_key or command.command_id) from None

    async def remember(self, command: AcceptedCommand) -> None:
        """Record a command whose key lives elsewhere (Redis): a status record without the key,
        once per command id (a retry of one already here changes nothing)."""
        assert self._writer is not None
        local = replace(command, idem_scope=None, idem_key=None, request_hash=None, idem_expires=None)
        await self._writer.execute(
            f"INSERT OR IGNORE INTO accepted_commands ({COLUMNS}) VALUES ({', '.join('?' * 17)})",
            (
                local.command_id, local.item_id, local.event_type, local.sku, local.actor, local.request_id,
                local.submitted_at, local.state, local.topic, local.event, None, None, None, None, None, None, None,
            ),
        )  # fmt: skip

    # --- CommandKeys: the keys in this file ------------------------------------------------

    async def find(self, scope: str, key: str) -> AcceptedCommand | None:
        return await self.by_idempotency_key(scope, key)

    async def claim(self, command: AcceptedCommand) -> None:
        await self.record(command)

    async def keep_reply(self, command: AcceptedCommand, status: int, headers: dict[str, str], body: bytes) -> None:
        await self.save_response(command.command_id, status, headers, body)

    async def set_state(self, command_id: str, state: str) -> None:
        assert self._writer is not None
        await self._writer.execute("UPDATE accepted_commands SET state = ? WHERE command_id = ?", (state, command_id))

    async def save_response(self, command_id: str, status: int, headers: dict[str, str], body: bytes) -> None:
        assert self._writer is not None
        await self._writer.execute(
            "UPDATE accepted_commands SET state = 'published', response_status = ?, response_headers = ?, "
            "response_body = ? WHERE command_id = ?",
            (status, json.dumps(headers), body, command_id),
        )

    async def by_idempotency_key(self, scope: str, key: str) -> AcceptedCommand | None:
        async with self._db.execute(
            f"SELECT {COLUMNS} FROM accepted_commands WHERE idem_scope = ? AND idem_key = ?", (scope, key)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        command = _row_to_command(row)
        if command.idem_expires is not None and command.idem_expires < time.time():
            await self._forget_key(command.command_id)
            return None
        return command

    async def _forget_key(self, command_id: str) -> None:
        assert self._writer is not None
        await self._writer.execute(
            "UPDATE accepted_commands SET idem_key = NULL, idem_scope = NULL WHERE command_id = ?", (command_id,)
        )


class CommandLookup:
    """Read-only questions about accepted commands, asked by both HTTP roles."""

    def __init__(self, conn_factory: ConnFactory) -> None:
        self._conn_factory = conn_factory

    async def get(self, command_id: str) -> AcceptedCommand | None:
        conn = await self._conn_factory()
        if conn is None:
            return None
        async with conn.execute(f"SELECT {COLUMNS} FROM accepted_commands WHERE command_id = ?", (command_id,)) as cur:
            row = await cur.fetchone()
        return _row_to_command(row) if row else None

    async def pending_creates(self, *, item_id: str | None = None, sku: str | None = None) -> list[AcceptedCommand]:
        """Creates accepted by the log whose outcome may not be known yet."""
        conn = await self._conn_factory()
        if conn is None:
            return []
        where, value = ("item_id = ?", item_id) if item_id is not None else ("sku = ?", sku)
        async with conn.execute(
            f"SELECT {COLUMNS} FROM accepted_commands WHERE {where} AND event_type = 'inventory.items.created' "
            "AND state != 'failed' ORDER BY submitted_at DESC LIMIT 20",
            (value,),
        ) as cursor:
            return [_row_to_command(row) for row in await cursor.fetchall()]
