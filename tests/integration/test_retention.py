"""Retention: the outbox and the processed event ids do not grow forever, and forgetting them
never loses a change nobody has seen nor lets a recent duplicate through."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from httpx_sse import connect_sse

from app.clock import to_rfc3339
from app.eventlog.base import EventLog
from app.listener.schema import SCHEMA_VERSION
from app.listener.service import Retention
from app.listener.store import InventoryStore
from tests.integration.test_read_side import wait_for
from tests.integration.test_sse_backpressure import publish_in_batches
from tests.support.app import PASSWORD, base_env
from tests.support.events import adjust, create, level, message, outcomes, query, reserve
from tests.support.listener import running_listener
from tests.support.processes import ServiceProcess, run_cli
from tests.support.waiting import eventually

LONG_AGO = "2000-01-01T00:00:00.000Z"
AN_HOUR_AGO = to_rfc3339(datetime.now(UTC) - timedelta(hours=1))


def age(db: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """Make rows look old, the way time would (the listener may be writing meanwhile)."""
    with sqlite3.connect(db, timeout=60) as conn:
        conn.execute(sql, params)


async def _applied(db: Path, n: int) -> bool:
    return len(outcomes(db)) >= n


async def test_pruning_forgets_only_old_published_changes_and_old_event_ids(
    event_log: EventLog, data_dir: Path
) -> None:
    item = str(uuid.uuid4())
    steps = [create(item, "RET-1", quantity=10), adjust(item, 1), adjust(item, 1), adjust(item, 1)]
    async with running_listener(event_log, data_dir, relay_running=False) as running:
        await event_log.publish([message(s) for s in steps])
        await eventually(lambda: _applied(running.db, len(steps)))
    seqs = [row[0] for row in query(running.db, "SELECT seq FROM changes ORDER BY seq")]
    assert len(seqs) > len(steps)  # an outcome per command and an item change per batch
    age(running.db, "UPDATE changes SET created_at = ?", (LONG_AGO,))
    age(running.db, "UPDATE changes SET created_at = ? WHERE seq = ?", (to_rfc3339(datetime.now(UTC)), seqs[-1]))
    old_ids = [steps[0].event_id, steps[1].event_id]
    age(running.db, "UPDATE processed_events SET applied_at = 0 WHERE event_id IN (?, ?)", tuple(old_ids))

    store = InventoryStore(running.db)
    await store.open()
    try:
        await store.mark_sent(seqs[3])  # the relay got this far; later changes are still unsent
        pruned = await store.prune(changes_before=AN_HOUR_AGO, processed_before=int(time.time()) - 3600, limit=3)
        assert (pruned.changes, pruned.processed_events) == (3, 2)  # at most `limit` per round
        pruned = await store.prune(changes_before=AN_HOUR_AGO, processed_before=int(time.time()) - 3600, limit=3)
        assert (pruned.changes, pruned.processed_events) == (1, 0)
        assert await store.unsent_count() == len(seqs) - 4  # old but unsent: kept for the relay
    finally:
        await store.close()
    assert [row[0] for row in query(running.db, "SELECT seq FROM changes ORDER BY seq")] == seqs[4:]
    kept = {row[0] for row in query(running.db, "SELECT event_id FROM processed_events")}
    assert kept == {s.event_id for s in steps[2:]}
    assert level(running.db, item) == (13, 0)  # the state itself is never pruned


async def _forgotten(db: Path, event_id: str) -> bool:
    return not query(db, "SELECT 1 FROM processed_events WHERE event_id = ?", (event_id,))


async def test_the_listener_prunes_by_itself_and_recent_duplicates_are_still_dropped(
    event_log: EventLog, data_dir: Path
) -> None:
    item = str(uuid.uuid4())
    first, twice = create(item, "RET-2", quantity=10), reserve(item, 3)
    retention = Retention(changes_seconds=3600, processed_seconds=3600, every_seconds=0.05)
    async with running_listener(event_log, data_dir, retention=retention) as running:
        await event_log.publish([message(first), message(twice)])
        await eventually(lambda: _applied(running.db, 2))
        # In a thread: the listener runs on this event loop, and a transaction it has open must be
        # able to finish while this write waits for the lock.
        await asyncio.to_thread(
            age, running.db, "UPDATE processed_events SET applied_at = 0 WHERE event_id = ?", (first.event_id,)
        )
        await eventually(lambda: _forgotten(running.db, first.event_id))

        marker = adjust(item, 1)
        await event_log.publish([message(twice), message(marker)])  # a retried publish of a recent event
        await eventually(lambda: _applied(running.db, 3))
    assert level(running.db, item) == (11, 3)
    assert query(running.db, "SELECT COUNT(*) FROM history WHERE event_id = ?", (twice.event_id,)) == [(1,)]


def test_an_sse_client_resuming_before_the_retained_changes_is_told_to_reset(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    db = data_dir / "inventory.db"
    env = base_env(data_dir)
    run_cli(env, "users", "add", "viewer", "--role", "viewer", "--password", PASSWORD)
    service = ServiceProcess("all", env, tmp_path / "all.log").start()
    try:
        item = str(uuid.uuid4())
        publish_in_batches(data_dir / "eventlog.db", [create(item, "RET-3", quantity=1)])
        publish_in_batches(data_dir / "eventlog.db", [adjust(item, 1) for _ in range(5)])
        wait_for(lambda: len(outcomes(db)) == 6 and published(db) == last_seq(db))
        newest = last_seq(db)  # one outcome per command, one item change per batch: at least 7
        service.stop()
        age(db, "UPDATE changes SET created_at = ? WHERE seq <= ?", (LONG_AGO, newest - 2))
        service.start()  # the listener prunes on its first round
        wait_for(lambda: query(db, "SELECT MIN(seq) FROM changes") == [(newest - 1,)])

        token = httpx.post(
            f"{service.url}/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD}
        ).json()["token"]
        assert first_event(service.url, token, last_event_id=1)[0] == "reset"  # 2..newest-2 are gone
        assert first_event(service.url, token, last_event_id=newest - 2)[1] == str(newest - 1)  # all there
    finally:
        service.stop()


def published(db: Path) -> int:
    return int(query(db, "SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) FROM meta WHERE key = 'published_seq'")[0][0])


def last_seq(db: Path) -> int:
    return int(query(db, "SELECT COALESCE(MAX(seq), 0) FROM changes")[0][0])


def first_event(url: str, token: str, *, last_event_id: int) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": str(last_event_id)}
    with (
        httpx.Client(timeout=httpx.Timeout(5.0, read=30.0)) as client,
        connect_sse(client, "GET", f"{url}/api/v1/inventory/stream", headers=headers) as source,
    ):
        for sse in source.iter_sse():
            if sse.event in ("item", "outcome", "reset"):
                return sse.event, sse.id or ""
    raise AssertionError("the stream ended without an event")


async def test_a_database_of_schema_1_is_migrated_in_place(tmp_path: Path) -> None:
    db = tmp_path / "inventory.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE processed_events (event_id TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO processed_events VALUES ('seen-before-the-upgrade')")
    before = int(time.time())
    store = InventoryStore(db)
    await store.open()
    try:
        assert await store.processed(["seen-before-the-upgrade", "new"]) == {"seen-before-the-upgrade"}
        # Its age is unknown, so it counts from the upgrade: not pruned before a whole window passes.
        pruned = await store.prune(changes_before=AN_HOUR_AGO, processed_before=before - 3600, limit=100)
        assert pruned.processed_events == 0
    finally:
        await store.close()
    assert query(db, "SELECT applied_at >= ? FROM processed_events", (before,)) == [(1,)]
    assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


async def test_a_database_of_schema_2_gains_chain_totals_on_the_item_row(tmp_path: Path) -> None:
    """Version 2 added up the levels on every read; after the in-place migration the item row holds
    the totals, and the listener keeps them from there on."""
    db = tmp_path / "inventory.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE items (id TEXT PRIMARY KEY, sku TEXT NOT NULL, name TEXT NOT NULL, "
            "description TEXT NOT NULL DEFAULT '', version INTEGER NOT NULL, created_at TEXT NOT NULL, "
            "updated_at TEXT NOT NULL, deleted_at TEXT, low_stock_threshold INTEGER)"
        )
        conn.execute(
            "CREATE TABLE stock_levels (item_id TEXT NOT NULL, location TEXT NOT NULL, quantity INTEGER NOT NULL, "
            "reserved INTEGER NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL, "
            "PRIMARY KEY (item_id, location)) WITHOUT ROWID"
        )
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
        conn.execute("INSERT INTO items VALUES ('i1', 'A', 'a', '', 3, 't', 't', NULL, NULL)")
        conn.execute("INSERT INTO items VALUES ('i2', 'B', 'b', '', 1, 't', 't', NULL, NULL)")
        conn.executemany(
            "INSERT INTO stock_levels VALUES (?, ?, ?, ?, 1, 't')",
            [("i1", "MAIN", 10, 2), ("i1", "S001", 5, 1), ("i1", "S002", 0, 0)],
        )
    store = InventoryStore(db)
    await store.open()
    try:
        loaded = await store.all_levels(["i1", "i2"])
    finally:
        await store.close()
    assert (loaded["i1"].quantity, loaded["i1"].reserved) == (15, 3)
    assert (loaded["i2"].quantity, loaded["i2"].reserved) == (0, 0)
    assert query(db, "SELECT id, quantity, reserved FROM items ORDER BY id") == [("i1", 15, 3), ("i2", 0, 0)]
    assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
