"""Opening SQLite files the way every part of the application needs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

log = logging.getLogger(__name__)
T = TypeVar("T")


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


Work = Callable[[aiosqlite.Connection], Awaitable[T]]


class GroupCommitter:
    """Runs many small writes in one transaction, so concurrent requests share one fsync."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._queue: asyncio.Queue[tuple[Work[object], asyncio.Future[object]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sqlite-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self, work: Work[T]) -> T:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((work, future))
        return await future  # type: ignore[return-value]

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            results: list[tuple[asyncio.Future[object], object]] = []
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                for work, future in batch:
                    # Each piece of work in its own savepoint: one failing write (a unique key
                    # taken) must not undo the others that share the transaction.
                    await self._conn.execute("SAVEPOINT one")
                    try:
                        results.append((future, await work(self._conn)))
                        await self._conn.execute("RELEASE one")
                    except aiosqlite.IntegrityError as exc:
                        await self._conn.execute("ROLLBACK TO one")
                        await self._conn.execute("RELEASE one")
                        results.append((future, exc))
                await self._conn.execute("COMMIT")
            except Exception as exc:
                log.exception("group commit failed")
                with contextlib.suppress(Exception):
                    await self._conn.execute("ROLLBACK")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for future, result in results:
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
