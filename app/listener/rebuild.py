"""Rebuild the inventory database by replaying the command topics from the start.

The replay runs the listener's own code into a fresh file, then compares the result with the
current database. With ``apply`` (and the listener stopped) the rebuilt file takes the current
one's place; the listener refreshes the cache from it when it starts.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.clock import utc_now
from app.domain.alerts import DEFAULT_THRESHOLD
from app.domain.events import COMMAND_TOPICS
from app.eventlog.base import EventConsumer, EventLog, Message, PositionLoader, StartAt, TopicPartition, TopicSpec
from app.listener.planner import Planner
from app.listener.service import Listener, RetryPolicy
from app.listener.store import InventoryStore


class _NoNotifications:
    """A rebuild announces nothing: the change records it writes are history, not news."""

    def notify(self) -> None:
        return None


class _ReplayLog:
    """Reads from the real log; drops what the replay would publish (dead letters exist already)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None: ...

    async def publish(self, messages: Sequence[Message]) -> None:
        return None

    def consumer(
        self, topics: Sequence[str], *, group_id: str | None, start_at: StartAt = "earliest",
        positions: PositionLoader | None = None,
    ) -> EventConsumer:  # fmt: skip
        return self._log.consumer(topics, group_id=group_id, start_at=start_at, positions=positions)

    async def ping(self) -> bool:
        return await self._log.ping()

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        return await self._log.end_offsets(topics)


@dataclass
class RebuildReport:
    events: int
    path: Path
    differences: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def equal(self) -> bool:
        return not self.differences


ITEMS_SQL = (
    "SELECT id, sku, name, description, version, deleted_at IS NOT NULL, low_stock_threshold, quantity, reserved, "
    "in_transit FROM items"
)
# The alert state too: a replay decides it again, change by change, as the listener did. The
# alerts themselves are a log like the history, not compared (a file upgraded from before alerts
# has none for its past).
LEVELS_SQL = "SELECT item_id, location, quantity, reserved, version, alert FROM stock_levels"
OUTCOMES_SQL = "SELECT command_id, status, reason FROM command_outcomes"
TRANSFERS_SQL = "SELECT id, item_id, from_location, to_location, quantity, state, received FROM transfers"
RESERVATIONS_SQL = "SELECT id, item_id, location, quantity, reserved, state, reference, expires_at FROM reservations"
TABLES = {
    "items": ITEMS_SQL,
    "levels": LEVELS_SQL,
    "outcomes": OUTCOMES_SQL,
    "transfers": TRANSFERS_SQL,
    "reservations": RESERVATIONS_SQL,
}
KEY_WIDTH = {"levels": 2}


def _snapshot(db: Path) -> dict[str, dict[tuple[object, ...], tuple[object, ...]]]:
    if not db.exists():
        return {table: {} for table in TABLES}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        snapshot: dict[str, dict[tuple[object, ...], tuple[object, ...]]] = {}
        for table, sql in TABLES.items():
            width = KEY_WIDTH.get(table, 1)
            snapshot[table] = {tuple(row[:width]): tuple(row[width:]) for row in conn.execute(sql)}
        return snapshot
    finally:
        conn.close()


def compare(current: Path, rebuilt: Path, *, limit: int = 20) -> list[str]:
    before, after = _snapshot(current), _snapshot(rebuilt)
    differences: list[str] = []
    for table in TABLES:
        for key in sorted(set(before[table]) | set(after[table]), key=str):
            old, new = before[table].get(key), after[table].get(key)
            if old != new:
                differences.append(f"{table} {'/'.join(map(str, key))}: current {old} rebuilt {new}")
    return differences[:limit] + ([f"... and {len(differences) - limit} more"] if len(differences) > limit else [])


async def rebuild(
    event_log: EventLog, data_dir: Path, *, apply: bool = False, low_stock_threshold: int = DEFAULT_THRESHOLD
) -> RebuildReport:
    """Replay into a fresh file and compare. ``low_stock_threshold`` must be the listener's
    default threshold: the replay decides the levels' alert states by it as the listener did."""
    ends = await event_log.end_offsets(COMMAND_TOPICS)
    target = data_dir / f"rebuild-{time.strftime('%Y%m%d-%H%M%S')}.db"
    store = InventoryStore(target, low_stock_threshold=low_stock_threshold)
    await store.open()
    replay = _ReplayLog(event_log)
    listener = Listener(replay, store, _NoNotifications(), retry=RetryPolicy(max_attempts=3))
    consumer = replay.consumer(COMMAND_TOPICS, group_id=None, start_at="earliest")
    events = 0
    await consumer.start()
    try:
        positions = {tp: 0 for tp in ends}
        while any(positions[tp] < end for tp, end in ends.items()):
            records = [r for r in await consumer.fetch(1000, timeout=1.0) if r.offset < ends.get(r.position, 0)]
            if records:
                await listener.process(records)
                events += len(records)
                for record in records:
                    positions[record.position] = max(positions[record.position], record.offset + 1)
        # Whatever still waits for a create that never came ended as unknown_item in the original too.
        expired = await store.expired_parked(math.inf)
        if expired:
            loaded = await store.load([p.event for p in expired])
            planner = Planner(loaded, now=utc_now(), now_epoch=time.time(), orphan_wait=0)
            for parked in expired:
                planner.expire(parked)
            await store.write(planner.plan, expected_positions={})
        await store.mark_sent(await store.last_seq())
    finally:
        await consumer.stop()
        await store.close()
    current = data_dir / "inventory.db"
    report = RebuildReport(events=events, path=target, differences=compare(current, target))
    if apply:
        _swap_in(current, target)
        report.applied = True
    return report


def _swap_in(current: Path, rebuilt: Path) -> None:
    """Keep the old file as a backup and continue its change numbers, so clients that resume
    with an old Last-Event-ID are told to reload instead of silently skipping changes."""
    last_seq = 0
    if current.exists():
        with contextlib.closing(sqlite3.connect(current)) as conn:
            last_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with contextlib.closing(sqlite3.connect(rebuilt)) as conn:
        rebuilt_max = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
        conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'changes'", (max(last_seq, rebuilt_max),))
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if current.exists():
        backup = current.with_name(f"inventory.db.before-{rebuilt.stem}")
        shutil.move(current, backup)
        for suffix in ("-wal", "-shm"):
            side = current.with_name(current.name + suffix)
            if side.exists():
                side.unlink()
    shutil.move(rebuilt, current)
