"""The imports file (``imports.db`` in the data dir), written by the command service only: each
import, and each of its rows with its status, so an import survives a restart and its report
says exactly what became of every row.

On nodes (docs/scaling.md) the file is the listener's alone: it opens imports.db and serves this
store's ``SURFACE`` (app/http/internal_calls.py); command and query nodes use
``remote_import_store``. Command nodes each run an ImportRunner over the one store: a running
import is advanced by the node holding its lease (``claim``), which another node takes over once
it has expired (the holder stopped or was killed)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from app.domain.imports import ParsedRow, Progress, RowError
from app.http.internal_calls import RemoteCalls, RemoteObject, Surface, remote
from app.sqlitefiles import open_read_only, open_read_write

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS imports (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL,
    username TEXT NOT NULL,
    columns TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- staging (rows still arriving from a node), previewed (nothing applied), running
    -- (confirmed), done, failed
    state TEXT NOT NULL,
    confirmed_at TEXT,
    finished_at TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS imports_state ON imports (state);
CREATE TABLE IF NOT EXISTS import_rows (
    import_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    -- error | valid | submitted | applied | rejected
    status TEXT NOT NULL,
    cells TEXT NOT NULL,
    errors TEXT,
    command BLOB,
    command_id TEXT,
    reason TEXT,
    PRIMARY KEY (import_id, row)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS import_rows_status ON import_rows (import_id, status, row);
"""
# The runner's lease on a running import (added to files made before it): who advances it, until
# when (the store's clock, seconds since the epoch).
LEASE_COLUMNS = (("lease_holder", "TEXT"), ("lease_until", "REAL"))


@dataclass(frozen=True)
class ImportRecord:
    id: str
    kind: str
    sha256: str
    filename: str
    username: str
    columns: tuple[str, ...]
    created_at: str
    state: str
    confirmed_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class NewRow:
    """A row of an upload as it is kept: its cells, its errors, its encoded command (None: not valid)."""

    number: int
    cells: dict[str, str]
    errors: tuple[RowError, ...]
    command: bytes | None


@dataclass(frozen=True)
class StoredRow:
    row: int
    status: str
    cells: dict[str, str]
    errors: list[RowError]
    command: bytes | None
    command_id: str | None
    reason: str | None


IMPORT_COLUMNS = "id, kind, sha256, filename, username, columns, created_at, state, confirmed_at, finished_at"
ROW_COLUMNS = "row, status, cells, errors, command, command_id, reason"


def _record(row: Sequence[Any]) -> ImportRecord:
    values = list(row)
    values[5] = tuple(json.loads(values[5]))
    return ImportRecord(*values)


def _stored(row: Sequence[Any]) -> StoredRow:
    errors = [RowError(int(e[0]), str(e[1]), str(e[2])) for e in json.loads(row[3] or "[]")]
    return StoredRow(int(row[0]), str(row[1]), json.loads(row[2]), errors, row[4], row[5], row[6])


class ImportStore:
    """Read-write in the command role; read-only (``read_only``) for the pages of the query role,
    which open it once the command role made it."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._conn: aiosqlite.Connection | None = None
        # One transaction at a time on the one connection (uploads and the runner write).
        self._writing = asyncio.Lock()

    async def open(self) -> None:
        if self.read_only:
            return  # opened on first read, once the file exists
        self._conn = await open_read_write(self.path)
        await self._conn.executescript(SCHEMA)
        async with self._conn.execute("PRAGMA table_info(imports)") as cur:
            present = {str(row[1]) for row in await cur.fetchall()}
        for name, kind in LEASE_COLUMNS:
            if name not in present:
                await self._conn.execute(f"ALTER TABLE imports ADD COLUMN {name} {kind}")

    async def _read(self) -> aiosqlite.Connection | None:
        if self._conn is None and self.read_only and self.path.exists():
            async with self._writing:
                if self._conn is None:
                    self._conn = await open_read_only(self.path)
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("import store is not open")
        return self._conn

    async def _write(self, statements: Iterable[tuple[str, Sequence[Any] | list[Sequence[Any]], bool]]) -> None:
        """Statements (sql, params, many) in one transaction."""
        async with self._writing:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params, many in statements:
                    if many:
                        await self._db.executemany(sql, params)
                    else:
                        await self._db.execute(sql, params)
                await self._db.execute("COMMIT")
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise

    async def create(self, record: ImportRecord, rows: Sequence[ParsedRow], commands: Sequence[bytes | None]) -> None:
        """Keep an upload: its checked rows and their encoded commands (None: the row is not valid)."""
        kept = [NewRow(row.number, row.cells, row.errors, command) for row, command in zip(rows, commands, strict=True)]
        await self.keep(record, kept)

    async def keep(self, record: ImportRecord, rows: Sequence[NewRow]) -> None:
        """The import and its rows, in one transaction."""
        await self._write(
            [
                (
                    f"INSERT INTO imports ({IMPORT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id, record.kind, record.sha256, record.filename, record.username,
                        json.dumps(record.columns), record.created_at, record.state, None, None,
                    ),
                    False,
                ),
                _insert_rows(record.id, rows),
            ]
        )  # fmt: skip

    async def add_rows(self, import_id: str, rows: Sequence[NewRow]) -> None:
        """More rows of an import still staging (an upload sent in parts by a node)."""
        async with self._db.execute("SELECT state FROM imports WHERE id = ?", (import_id,)) as cur:
            found = await cur.fetchone()
        if found is None or found[0] != "staging":
            raise ValueError(f"import {import_id} is not staging")
        await self._write([_insert_rows(import_id, rows)])

    async def discard(self, import_id: str) -> None:
        """Forget an import whose upload did not arrive whole (staging only)."""
        await self._write(
            [
                ("DELETE FROM import_rows WHERE import_id = ?", (import_id,), False),
                ("DELETE FROM imports WHERE id = ? AND state = 'staging'", (import_id,), False),
            ]
        )

    async def claim(self, import_id: str, holder: str, seconds: float) -> bool:
        """Hold (or renew) the lease on a running import for ``seconds``: True when ``holder``
        has it now, False when another holder's lease has not expired (or it is not running).
        One UPDATE, so two runners asking together cannot both get it; the store's clock decides."""
        now = time.time()
        async with self._writing:
            cursor = await self._db.execute(
                "UPDATE imports SET lease_holder = ?, lease_until = ? WHERE id = ? AND state = 'running' "
                "AND (lease_holder IS NULL OR lease_holder = ? OR lease_until IS NULL OR lease_until < ?)",
                (holder, now + seconds, import_id, holder, now),
            )
            return cursor.rowcount == 1

    async def get(self, import_id: str) -> ImportRecord | None:
        db = await self._read()
        if db is None:
            return None
        async with db.execute(f"SELECT {IMPORT_COLUMNS} FROM imports WHERE id = ?", (import_id,)) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def with_state(self, state: str) -> list[ImportRecord]:
        async with self._db.execute(
            f"SELECT {IMPORT_COLUMNS} FROM imports WHERE state = ? ORDER BY created_at", (state,)
        ) as cur:
            return [_record(row) for row in await cur.fetchall()]

    async def recent(self, *, username: str | None, limit: int = 20) -> list[ImportRecord]:
        where, params = (
            ("WHERE state != 'staging' AND username = ?", (username, limit))
            if username
            else ("WHERE state != 'staging'", (limit,))
        )
        db = await self._read()
        if db is None:
            return []
        async with db.execute(
            f"SELECT {IMPORT_COLUMNS} FROM imports {where} ORDER BY created_at DESC LIMIT ?", params
        ) as cur:
            return [_record(row) for row in await cur.fetchall()]

    async def earlier_commands(self, record: ImportRecord, rows: Sequence[int]) -> dict[int, str]:
        """row -> command id of these rows in an earlier confirmed import of the same file (same
        kind and digest, by anyone). Idempotency keys are forgotten after a day; this is not, so
        the same file uploaded a month later still applies nothing twice."""
        if not rows:
            return {}
        marks = ", ".join("?" * len(rows))
        async with self._db.execute(
            "SELECT r.row, r.command_id FROM imports AS i JOIN import_rows AS r ON r.import_id = i.id "
            "WHERE i.sha256 = ? AND i.kind = ? AND i.id != ? AND i.state != 'previewed' "
            f"AND r.command_id IS NOT NULL AND r.row IN ({marks}) ORDER BY i.created_at",
            (record.sha256, record.kind, record.id, *rows),
        ) as cur:
            found: dict[int, str] = {}
            for row, command_id in await cur.fetchall():
                found.setdefault(int(row), str(command_id))
            return found

    async def progress(self, import_id: str) -> Progress:
        db = await self._read()
        if db is None:
            return Progress()
        async with db.execute(
            "SELECT status, COUNT(*) FROM import_rows WHERE import_id = ? GROUP BY status", (import_id,)
        ) as cur:
            return Progress.of({str(status): int(count) for status, count in await cur.fetchall()})

    async def rows(
        self, import_id: str, *, status: str | None = None, after: int = 0, limit: int = 100
    ) -> list[StoredRow]:
        """Rows in file order after row number ``after`` (keyset paging: cheap at row 100,000)."""
        where, params = "import_id = ? AND row > ?", [import_id, after]
        if status is not None:
            where += " AND status = ?"
            params.append(status)
        db = await self._read()
        if db is None:
            return []
        async with db.execute(
            f"SELECT {ROW_COLUMNS} FROM import_rows WHERE {where} ORDER BY row LIMIT ?", (*params, limit)
        ) as cur:
            return [_stored(row) for row in await cur.fetchall()]

    async def count(self, import_id: str, status: str | None) -> int:
        sql = "SELECT COUNT(*) FROM import_rows WHERE import_id = ?"
        params: tuple[str, ...] = (import_id,)
        if status is not None:
            sql += " AND status = ?"
            params = (import_id, status)
        db = await self._read()
        if db is None:
            return 0
        async with db.execute(sql, params) as cur:
            found = await cur.fetchone()
        return int(found[0]) if found else 0

    async def set_state(self, import_id: str, state: str, *, at: str, column: str | None = None) -> bool:
        """Move an import to ``state``; ``column`` (confirmed_at, finished_at) records when. False
        when it was not in the state the move starts from."""
        start = {"previewed": "staging", "running": "previewed", "done": "running", "failed": "running"}[state]
        stamp = f", {column} = ?" if column in ("confirmed_at", "finished_at") else ""
        params: tuple[str, ...] = (state, at, import_id, start) if stamp else (state, import_id, start)
        async with self._writing:
            cursor = await self._db.execute(f"UPDATE imports SET state = ?{stamp} WHERE id = ? AND state = ?", params)
            changed = cursor.rowcount
        return changed == 1

    async def mark_submitted(self, import_id: str, submitted: Sequence[tuple[int, str]]) -> None:
        """(row, command_id) of rows whose commands the log has."""
        await self._write(
            [
                (
                    "UPDATE import_rows SET status = 'submitted', command_id = ? "
                    "WHERE import_id = ? AND row = ? AND status = 'valid'",
                    [(command_id, import_id, row) for row, command_id in submitted],
                    True,
                )
            ]
        )

    async def mark_refused(self, import_id: str, refused: Sequence[tuple[int, str]]) -> None:
        """(row, reason) of rows the command service refused before publishing anything."""
        await self._write(
            [
                (
                    "UPDATE import_rows SET status = 'rejected', reason = ? WHERE import_id = ? AND row = ?",
                    [(reason, import_id, row) for row, reason in refused],
                    True,
                )
            ]
        )

    async def mark_decided(self, import_id: str, decided: Sequence[tuple[int, str, str | None]]) -> None:
        """(row, applied|rejected, reason) as the listener decided."""
        await self._write(
            [
                (
                    "UPDATE import_rows SET status = ?, reason = ? WHERE import_id = ? AND row = ? "
                    "AND status = 'submitted'",
                    [(status, reason, import_id, row) for row, status, reason in decided],
                    True,
                )
            ]
        )


def _insert_rows(import_id: str, rows: Sequence[NewRow]) -> tuple[str, list[Sequence[Any]], bool]:
    values: list[Sequence[Any]] = [
        (
            import_id,
            row.number,
            "valid" if row.command is not None else "error",
            json.dumps(row.cells, ensure_ascii=False),
            json.dumps([[e.row, e.column, e.message] for e in row.errors], ensure_ascii=False) if row.errors else None,
            row.command,
        )
        for row in rows
    ]
    return (
        "INSERT INTO import_rows (import_id, row, status, cells, errors, command) VALUES (?, ?, ?, ?, ?, ?)",
        values,
        True,
    )


# What nodes call of the listener's imports.db (app/http/internal_calls.py): every method the
# service, the runner, the API, the report and the pages use.
CALLS = (
    "keep", "add_rows", "discard", "claim", "get", "with_state", "recent", "earlier_commands", "progress", "rows",
    "count", "set_state", "mark_submitted", "mark_refused", "mark_decided",
)  # fmt: skip
SURFACE = Surface(ImportStore, frozenset(CALLS))


class RemoteImportStore(RemoteObject):
    """The listener's ImportStore from a node. An upload bigger than one call may carry (the
    listener's body limit) is sent in parts: its record first, staging (listed nowhere), then its
    rows, then it becomes previewed; a part that fails discards it."""

    async def keep(self, record: ImportRecord, rows: Sequence[NewRow]) -> None:
        budget = max(1024, self._calls.max_body_bytes // 2)
        parts: list[list[NewRow]] = [[]]
        size = 0
        for row in rows:
            cost = len(msgspec.json.encode(row)) + 1
            if parts[-1] and size + cost > budget:
                parts.append([])
                size = 0
            parts[-1].append(row)
            size += cost
        if len(parts) == 1:
            await self._remote("keep", record, parts[0])
            return
        await self._remote("keep", dataclasses.replace(record, state="staging"), parts[0])
        try:
            for part in parts[1:]:
                await self._remote("add_rows", record.id, part)
            if not await self._remote("set_state", record.id, record.state, at=record.created_at):
                raise RuntimeError(f"import {record.id} left staging under someone else's hands")
        except BaseException:
            try:
                await self._remote("discard", record.id)
            except Exception:
                log.warning("import %s: its partial upload was not discarded", record.id)
            raise


def remote_import_store(calls: RemoteCalls) -> ImportStore:
    """The listener's ImportStore, as a node uses it."""
    store: ImportStore = remote(SURFACE, calls, "imports", base=RemoteImportStore)
    return store
