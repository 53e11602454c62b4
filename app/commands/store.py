"""The command service's own file: commands it accepted, and stored answers for idempotent retries.

Only the command service writes it. The query service reads it (read-only) to tell a pending
command from an unknown one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import aiosqlite

from app.sqlitefiles import GroupCommitter, open_read_write

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


class CommandStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._writer: GroupCommitter | None = None

    async def open(self) -> None:
        self._conn = await open_read_write(self.path)
        await self._conn.executescript(SCHEMA)
        self._writer = GroupCommitter(self._conn)
        self._writer.start()

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
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
            )  # fmt: skip
        except aiosqlite.IntegrityError:
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
