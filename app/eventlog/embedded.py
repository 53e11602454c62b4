"""The embedded event log: Kafka's model (topics, keyed partitions, offsets) in one SQLite file.

Used when no broker is configured. Publishing is durable before it returns (WAL with
``synchronous=FULL``) and concurrent publishes share one transaction and one fsync, which is
what makes a few thousand commands a second possible on a laptop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from app.eventlog.base import (
    EventConsumer,
    Headers,
    LogUnavailable,
    Message,
    PositionLoader,
    Record,
    StartAt,
    TopicPartition,
    TopicSpec,
)
from app.metrics import track_size

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    retention_ms INTEGER
);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    headers TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
"""

# How often a waiting consumer looks for messages written by another process (the console
# commands); writes from this process wake it at once.
POLL_SECONDS = 0.5


def partition_for(key: bytes | None, partitions: int, counter: int) -> int:
    if key is None:
        return counter % partitions
    return zlib.crc32(key) % partitions


def _encode_headers(headers: Headers) -> str:
    return json.dumps([[name, value.decode("latin-1")] for name, value in headers])


def _decode_headers(raw: str) -> Headers:
    return tuple((name, value.encode("latin-1")) for name, value in json.loads(raw))


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute("PRAGMA busy_timeout=10000")
    return conn


class EmbeddedEventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._partitions: dict[str, int] = {}
        self._queue: asyncio.Queue[tuple[Sequence[Message], asyncio.Future[None]]] = asyncio.Queue()
        # One entry per publish in progress; the writer takes all of them at each commit.
        track_size("embedded_log_publishes", None, self._queue.qsize)
        self._writer: asyncio.Task[None] | None = None
        self._written = asyncio.Event()
        self._unkeyed = 0

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await _connect(self.path)
        await self._conn.executescript(SCHEMA)
        await self._load_topics()
        self._writer = asyncio.create_task(self._write_loop(), name="embedded-log-writer")

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _load_topics(self) -> None:
        assert self._conn is not None
        async with self._conn.execute("SELECT name, partitions FROM topics") as cursor:
            self._partitions = {name: partitions async for name, partitions in cursor}

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        assert self._conn is not None
        await self._conn.executemany(
            "INSERT OR IGNORE INTO topics (name, partitions, retention_ms) VALUES (?, ?, ?)",
            [(spec.name, spec.partitions, spec.retention_ms) for spec in specs],
        )
        await self._load_topics()

    def partitions(self, topic: str) -> int:
        try:
            return self._partitions[topic]
        except KeyError:
            raise LogUnavailable(f"unknown topic {topic!r}") from None

    async def publish(self, messages: Sequence[Message]) -> None:
        if self._writer is None or self._writer.done():
            raise LogUnavailable("embedded event log is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((messages, future))
        await future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._append([m for messages, _ in batch for m in messages])
            except Exception as exc:
                log.exception("embedded log write failed")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(LogUnavailable(f"event log write failed: {exc}"))
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            self._wake_consumers()

    def _wake_consumers(self) -> None:
        self._written.set()
        self._written = asyncio.Event()

    async def wait_for_writes(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._written.wait()

    async def _append(self, messages: Sequence[Message]) -> None:
        assert self._conn is not None
        now_ms = int(time.time() * 1000)
        rows: list[tuple[str, int, int, bytes | None, bytes | None, str, int]] = []
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            next_offsets: dict[TopicPartition, int] = {}
            for message in messages:
                self._unkeyed += message.key is None
                tp = (
                    message.topic,
                    partition_for(message.key, self.partitions(message.topic), self._unkeyed),
                )
                if tp not in next_offsets:
                    async with self._conn.execute(
                        'SELECT COALESCE(MAX("offset") + 1, 0) FROM records WHERE topic = ? AND partition = ?',
                        tp,
                    ) as cursor:
                        row = await cursor.fetchone()
                    next_offsets[tp] = int(row[0]) if row else 0
                offset = next_offsets[tp]
                next_offsets[tp] = offset + 1
                rows.append(
                    (
                        tp[0],
                        tp[1],
                        offset,
                        message.key,
                        message.value,
                        _encode_headers(message.headers),
                        now_ms,
                    )
                )
            await self._conn.executemany(
                'INSERT INTO records (topic, partition, "offset", key, value, headers, timestamp_ms) '
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            await self._conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):
                await self._conn.execute("ROLLBACK")
            raise

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str | None,
        start_at: StartAt = "earliest",
        positions: PositionLoader | None = None,
    ) -> EventConsumer:
        return EmbeddedConsumer(self, list(topics), group_id=group_id, start_at=start_at, positions=positions)

    async def ping(self) -> bool:
        return self._writer is not None and not self._writer.done()

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        assert self._conn is not None
        ends: dict[TopicPartition, int] = {}
        for topic in topics:
            for partition in range(self.partitions(topic)):
                async with self._conn.execute(
                    'SELECT COALESCE(MAX("offset") + 1, 0) FROM records WHERE topic = ? AND partition = ?',
                    (topic, partition),
                ) as cursor:
                    row = await cursor.fetchone()
                ends[(topic, partition)] = int(row[0]) if row else 0
        return ends


class EmbeddedConsumer:
    def __init__(
        self,
        log: EmbeddedEventLog,
        topics: list[str],
        *,
        group_id: str | None,
        start_at: StartAt,
        positions: PositionLoader | None,
    ) -> None:
        self._log = log
        self._topics = topics
        self._group_id = group_id
        self._start_at = start_at
        self._loader = positions
        self._conn: aiosqlite.Connection | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._turn = 0

    async def start(self) -> None:
        self._conn = await _connect(self._log.path)
        assigned = [(topic, p) for topic in self._topics for p in range(self._log.partitions(topic))]
        known = await self._loader(assigned) if self._loader else {}
        ends = await self._end_offsets(assigned)
        for tp in assigned:
            if tp in known:
                self._positions[tp] = known[tp]
            else:
                self._positions[tp] = ends[tp] if self._start_at == "latest" else 0

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._conn is not None
        ends: dict[TopicPartition, int] = {}
        for tp in tps:
            async with self._conn.execute(
                'SELECT COALESCE(MAX("offset") + 1, 0) FROM records WHERE topic = ? AND partition = ?', tp
            ) as cursor:
                row = await cursor.fetchone()
            ends[tp] = int(row[0]) if row else 0
        return ends

    async def fetch(self, max_records: int, timeout: float) -> list[Record]:
        deadline = time.monotonic() + timeout
        while True:
            records = await self._read(max_records)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            await self._log.wait_for_writes(min(remaining, POLL_SECONDS))

    async def _read(self, max_records: int) -> list[Record]:
        assert self._conn is not None
        tps = list(self._positions)
        # Start from a different partition each time so one busy partition cannot starve the rest.
        self._turn = (self._turn + 1) % max(len(tps), 1)
        records: list[Record] = []
        for tp in tps[self._turn :] + tps[: self._turn]:
            want = max_records - len(records)
            if want <= 0:
                break
            async with self._conn.execute(
                'SELECT "offset", key, value, headers, timestamp_ms FROM records '
                'WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (tp[0], tp[1], self._positions[tp], want),
            ) as cursor:
                rows = list(await cursor.fetchall())
            for offset, key, value, headers, ts in rows:
                records.append(Record(tp[0], tp[1], offset, key, value, _decode_headers(headers), ts))
            if rows:
                self._positions[tp] = rows[-1][0] + 1
        return records

    async def commit(self, positions: dict[TopicPartition, int]) -> None:
        if self._group_id is None or self._conn is None:
            return
        await self._conn.executemany(
            'INSERT INTO group_offsets (group_id, topic, partition, "offset") VALUES (?, ?, ?, ?) '
            'ON CONFLICT (group_id, topic, partition) DO UPDATE SET "offset" = excluded."offset"',
            [(self._group_id, topic, partition, offset) for (topic, partition), offset in positions.items()],
        )

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        self._positions.update(positions)

    async def lag(self) -> int | None:
        if self._conn is None:
            return None
        ends = await self._end_offsets(list(self._positions))
        return sum(max(0, ends[tp] - pos) for tp, pos in self._positions.items())
