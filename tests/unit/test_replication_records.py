"""The listener's change records carry every row it wrote: a replica that applies them (from the
start, or from a snapshot taken half-way) holds exactly the listener's read model, and screens
never see the replica-only fields."""

from __future__ import annotations

import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import msgspec

from app.domain import ids
from app.domain.catalogue import ItemUpdatedData
from app.domain.catalogue.items import ItemDeletedData
from app.domain.events import EventType
from app.domain.records import ItemChange, OutcomeChange, decode_change, for_screens
from app.eventlog.embedded import EmbeddedEventLog
from app.eventlog.topics import TOPICS
from app.jsontext import change_record
from app.listener.internal_controller import make_snapshot
from app.replica.store import Received, ReplicaStore
from tests.support.events import (
    adjust,
    cancel_reservation,
    cancel_transfer,
    commit_reservation,
    count,
    create,
    event,
    message,
    query,
    receive,
    release,
    reserve,
    ship,
    transfer,
)
from tests.support.listener import running_listener
from tests.support.waiting import eventually

LOCATIONS = ["MAIN", "S001", "S002"]
# Every table a reader reads, compared whole (the outbox without its local receive time).
TABLES = {
    "items": "SELECT * FROM items ORDER BY id",
    "stock_levels": "SELECT * FROM stock_levels ORDER BY item_id, location",
    "history": "SELECT * FROM history ORDER BY id",
    "transfers": "SELECT * FROM transfers ORDER BY id",
    "reservations": "SELECT * FROM reservations ORDER BY seq",
    "alerts": "SELECT * FROM alerts ORDER BY id",
    "command_outcomes": "SELECT * FROM command_outcomes ORDER BY command_id",
    "changes": "SELECT seq, kind, item_id, payload FROM changes ORDER BY seq",
    # The search index as the items it finds (row numbers are each file's own).
    "search": "SELECT i.id, s.sku, s.name FROM items_search s JOIN items i ON i.rowid = s.rowid ORDER BY i.id",
}


def workload(seed: int, items: int = 6, steps: int = 220) -> list[Any]:
    """Creates, edits, every stock command, transfers shipped and received or cancelled,
    reservations committed or cancelled, rejections, alerts (a threshold crossed both ways) and
    deletes, with a SKU reused after its item is deleted."""
    rng = random.Random(seed)
    item_ids = [str(uuid.uuid4()) for _ in range(items)]
    quiet = str(uuid.uuid4())
    events: list[Any] = [create(item, f"R-{n}", quantity=20) for n, item in enumerate(item_ids)]
    events.append(create(quiet, "QUIET", quantity=2))
    events += [
        event(EventType.ITEM_UPDATED, item, ItemUpdatedData(name="Socks", low_stock_threshold=8)) for item in item_ids
    ]
    shipped: list[tuple[str, str]] = []
    reserved: list[tuple[str, str]] = []
    while len(events) < steps:
        item = rng.choice(item_ids)
        source, target = rng.sample(LOCATIONS, 2)
        roll = rng.random()
        if roll < 0.15:
            events.append(adjust(item, rng.choice([-6, -3, -1, 2, 5, 9]), location=source))
        elif roll < 0.25:
            events.append(count(item, rng.randint(0, 30), location=source))
        elif roll < 0.35:
            events.append(transfer(item, rng.randint(1, 8), source, target))
        elif roll < 0.45:
            shipment = ship(item, rng.randint(1, 8), source, target)
            events.append(shipment)
            shipped.append((item, ids.transfer_id(shipment.command_id)))
        elif roll < 0.55 and shipped:
            item, transfer_id = shipped.pop(rng.randrange(len(shipped)))
            closing = receive(item, transfer_id) if rng.random() < 0.7 else cancel_transfer(item, transfer_id)
            events.append(closing)
        elif roll < 0.7:
            reference = f"ORDER-{len(events)}"
            made = reserve(item, rng.randint(1, 5), location=source, reference=reference)
            events.append(made)
            reserved.append((item, ids.reservation_id(item, made.command_id, reference)))
        elif roll < 0.8 and reserved:
            item, reservation_id = reserved.pop(rng.randrange(len(reserved)))
            closing = (
                commit_reservation(item, reservation_id)
                if rng.random() < 0.5
                else cancel_reservation(item, reservation_id)
            )
            events.append(closing)
        elif roll < 0.9:
            events.append(reserve(item, rng.randint(1, 4), location=source))
        else:
            events.append(release(item, rng.randint(1, 4), location=source))
    # A busy item deleted (refused while it has stock reserved or in transit), and a quiet one
    # whose SKU is taken again at once.
    events.append(event(EventType.ITEM_DELETED, item_ids[0], ItemDeletedData()))
    events.append(event(EventType.ITEM_DELETED, quiet, ItemDeletedData()))
    events.append(create(str(uuid.uuid4()), "QUIET", quantity=3))
    return events


def table_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        return {name: [tuple(row) for row in conn.execute(sql)] for name, sql in TABLES.items()}


def outbox(db: Path) -> list[Received]:
    return [
        Received(seq, decode_change(change_record(seq, payload)), payload)
        for seq, payload in query(db, "SELECT seq, payload FROM changes ORDER BY seq")
    ]


async def run_workload(data_dir: Path, events: list[Any]) -> Path:
    log = EmbeddedEventLog(data_dir / "log.db")
    await log.start()
    await log.ensure_topics(TOPICS)
    try:
        async with running_listener(log, data_dir) as running:
            for start in range(0, len(events), 25):
                await log.publish([message(e) for e in events[start : start + 25]])

            async def all_decided() -> bool:
                return len(query(running.db, "SELECT 1 FROM command_outcomes")) >= len(events)

            await eventually(all_decided)
            return running.db
    finally:
        await log.stop()


async def test_a_replica_applying_the_outbox_equals_the_listener_and_applying_twice_changes_nothing(
    tmp_path: Path,
) -> None:
    db = await run_workload(tmp_path, workload(seed=7))
    records = outbox(db)
    assert any(isinstance(r.change, ItemChange) and r.change.tombstone for r in records)
    assert any(isinstance(r.change, ItemChange) and r.change.alerts for r in records)

    replica = ReplicaStore(tmp_path / "replica.db")
    await replica.open()
    try:
        for start in range(0, len(records), 37):  # batches that split commits
            await replica.apply(records[start : start + 37])
        await replica.apply(records[: len(records) // 2])  # again: nothing moves
        assert await replica.watermark() == records[-1].seq
    finally:
        await replica.close()
    assert table_rows(tmp_path / "replica.db") == table_rows(db)


async def test_a_snapshot_half_way_then_the_rest_equals_the_listener(tmp_path: Path) -> None:
    events = workload(seed=11)
    half = len(events) // 2
    first = await run_workload(tmp_path / "a", events[:half])
    snapshot = tmp_path / "snapshot.db"
    seq = make_snapshot(first, snapshot)
    # Its sequence is its content's: every outcome it holds, and none after.
    assert seq == query(first, "SELECT MAX(seq) FROM changes")[0][0]
    assert query(snapshot, "SELECT COUNT(*) FROM processed_events") == [(0,)]
    assert query(snapshot, "SELECT value FROM meta WHERE key = 'replica_seq'") == [(str(seq),)]

    # The same listener goes on with the rest of the day.
    final = await run_workload(tmp_path / "a", events[half:])
    replica = ReplicaStore(tmp_path / "replica.db")
    await replica.open()
    try:
        await replica.install(snapshot, seq)
        await replica.apply([r for r in outbox(final) if r.seq > seq])
    finally:
        await replica.close()
    assert table_rows(tmp_path / "replica.db") == table_rows(final)


async def test_screens_get_the_records_without_the_replica_fields(tmp_path: Path) -> None:
    db = await run_workload(tmp_path, workload(seed=3, items=2, steps=40))
    for record in outbox(db):
        screened = msgspec.json.decode(msgspec.json.encode(for_screens(record.change)))
        assert not {"history", "tombstone", "deleted_at", "level_alerts", "reservation_seqs"} & set(screened)
        if isinstance(record.change, OutcomeChange):
            assert record.change.actor == "tester"
            assert "actor" not in screened
