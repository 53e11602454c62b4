"""Opening SQLite files the way every part of the application needs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import aiosqlite

from app.metrics import track_size

log = logging.getLogger(__name__)


async def open_read_only(path: Path) -> aiosqlite.Connection:
    """A connection that cannot write: SQLite itself refuses (``attempt to write a readonly database``)."""
    conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    await conn.execute("PRAGMA busy_timeout=5000")
    await conn.execute("PRAGMA query_only=ON")
    return conn


async def open_read_write(path: Path) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute("PRAGMA busy_timeout=5000")
    return conn


Statement = tuple[str, tuple[Any, ...]]


class GroupCommitter:
    """Runs the small writes of concurrent requests in one transaction and one fsync.

    Consecutive statements with the same SQL go to SQLite as one ``executemany``. A unique key
    that is taken fails only its own statement: the run is then replayed one statement at a
    time, each in its own savepoint, so the others still commit.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._queue: asyncio.Queue[tuple[Statement, asyncio.Future[None]]] = asyncio.Queue()
        # One entry per write in progress; each commit takes all of them.
        track_size("group_commit_writes", None, self._queue.qsize)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlite-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        """Return once the statement is committed; raise IntegrityError if it broke a constraint."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(((sql, params), future))
        await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            failed: dict[int, BaseException] = {}
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                for run in _runs_of_same_sql(batch):
                    failed |= await self._write(run)
                await self._conn.execute("COMMIT")
            except Exception as exc:
                log.exception("group commit failed")
                with contextlib.suppress(Exception):
                    await self._conn.execute("ROLLBACK")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for n, (_, future) in enumerate(batch):
                if future.done():
                    continue
                if n in failed:
                    future.set_exception(failed[n])
                else:
                    future.set_result(None)

    async def _write(self, run: list[tuple[int, Statement]]) -> dict[int, BaseException]:
        sql = run[0][1][0]
        await self._conn.execute("SAVEPOINT run")
        try:
            await self._conn.executemany(sql, [params for _, (_, params) in run])
            await self._conn.execute("RELEASE run")
            return {}
        except aiosqlite.IntegrityError:
            await self._conn.execute("ROLLBACK TO run")
            await self._conn.execute("RELEASE run")
        failed: dict[int, BaseException] = {}
        for n, (_, params) in run:
            await self._conn.execute("SAVEPOINT one")
            try:
                await self._conn.execute(sql, params)
                await self._conn.execute("RELEASE one")
            except aiosqlite.IntegrityError as exc:
                await self._conn.execute("ROLLBACK TO one")
                await self._conn.execute("RELEASE one")
                failed[n] = exc
        return failed


def _runs_of_same_sql(
    batch: list[tuple[Statement, asyncio.Future[None]]],
) -> list[list[tuple[int, Statement]]]:
    runs: list[list[tuple[int, Statement]]] = []
    for n, (statement, _) in enumerate(batch):
        if runs and runs[-1][0][1][0] == statement[0]:
            runs[-1].append((n, statement))
        else:
            runs.append([(n, statement)])
    return runs
