"""The listener against each event log adapter: exactly-once effects, dead letters, ordering."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from app.domain.events import CHANGES_TOPIC, DLQ_TOPIC, STOCK_TOPIC, EventType
from app.eventlog.base import EventLog, Message, Record
from tests.support.events import adjust, create, event, level, message, outcomes, query, release, reserve
from tests.support.listener import running_listener
from tests.support.waiting import eventually


async def read_topic(event_log: EventLog, topic: str, count: int) -> list[Record]:
    consumer = event_log.consumer([topic], group_id=None, start_at="earliest")
    await consumer.start()
    try:
        records: list[Record] = []

        async def enough() -> bool:
            records.extend(await consumer.fetch(1000, timeout=0.2))
            return len(records) >= count

        await eventually(enough)
        return records
    finally:
        await consumer.stop()


def applied_count(db: Path) -> int:
    return len(query(db, "SELECT 1 FROM command_outcomes"))


async def test_commands_are_applied_with_their_outcomes(event_log: EventLog, data_dir: Path) -> None:
    item = str(uuid.uuid4())
    steps = [create(item, "A-1", quantity=10), reserve(item, 4), release(item, 1), adjust(item, -2), release(item, 9)]
    async with running_listener(event_log, data_dir) as running:
        for step in steps:  # one at a time: the two topics are not ordered against each other
            before = len(outcomes(running.db))
            await event_log.publish([message(step)])
            await eventually(lambda before=before: _more_than(running.db, before))
    assert level(running.db, item) == (8, 3)
    result = outcomes(running.db)
    assert [result[s.command_id] for s in steps] == [
        ("applied", None), ("applied", None), ("applied", None), ("applied", None), ("rejected", "over_release"),
    ]  # fmt: skip
    assert query(running.db, "SELECT version FROM items WHERE id = ?", (item,)) == [
        (4,)
    ]  # the rejection changes nothing


async def _more_than(db: Path, n: int) -> bool:
    return applied_count(db) > n


async def test_the_same_event_delivered_twice_is_applied_once(event_log: EventLog, data_dir: Path) -> None:
    item = str(uuid.uuid4())
    twice = reserve(item, 3)
    async with running_listener(event_log, data_dir) as running:
        await event_log.publish([message(create(item, "TWICE", quantity=10))])
        await eventually(lambda: _more_than(running.db, 0))
        await event_log.publish([message(twice), message(twice)])
        marker = adjust(item, 1)
        await event_log.publish([message(marker)])
        await eventually(lambda: _more_than(running.db, 2))
    assert level(running.db, item) == (11, 3)
    assert query(running.db, "SELECT COUNT(*) FROM history WHERE event_id = ?", (twice.event_id,)) == [(1,)]


async def test_poison_and_unknown_types_are_dead_lettered_and_the_partition_moves_on(
    event_log: EventLog, data_dir: Path
) -> None:
    item = str(uuid.uuid4())
    key = item.encode()
    unknown = json.loads(message(reserve(item, 1)).value or b"{}")
    unknown["event_type"] = "inventory.stock.teleported"
    bad_messages = [
        Message(STOCK_TOPIC, key, b"\x00not json at all", (("event-type", b"?"),)),
        Message(STOCK_TOPIC, key, json.dumps(unknown).encode(), (("event-type", b"inventory.stock.teleported"),)),
    ]
    later = reserve(item, 2)
    async with running_listener(event_log, data_dir) as running:
        await event_log.publish([message(create(item, "POISON", quantity=5))])
        await eventually(lambda: _more_than(running.db, 0))
        await event_log.publish([*bad_messages, message(later)])  # same key: same partition, behind the poison
        await eventually(lambda: _more_than(running.db, 1))
        dead = await read_topic(event_log, DLQ_TOPIC, 2)
    assert level(running.db, item) == (5, 2)
    assert outcomes(running.db)[later.command_id] == ("applied", None)
    assert sorted(d.value or b"" for d in dead) == sorted(m.value or b"" for m in bad_messages)  # original bytes
    for record in dead:
        assert record.header("dlq-source-topic") == STOCK_TOPIC
        assert record.header("dlq-source-offset") is not None and record.header("dlq-source-partition") is not None
        assert record.header("dlq-error")
        assert record.header("dlq-attempts") == "1"
    errors = sorted(row[0] for row in query(running.db, "SELECT error FROM dead_letters"))
    assert any("invalid envelope" in e for e in errors) and any("unknown event_type" in e for e in errors)


async def test_a_stock_event_that_overtakes_its_create_waits_for_it(event_log: EventLog, data_dir: Path) -> None:
    item = str(uuid.uuid4())
    early = reserve(item, 2)
    async with running_listener(event_log, data_dir, orphan_wait=30) as running:
        await event_log.publish([message(early)])
        await eventually(lambda: _parked(running.db, 1))
        creation = create(item, "LATE", quantity=5)
        await event_log.publish([message(creation)])
        await eventually(lambda: _more_than(running.db, 1))
    assert level(running.db, item) == (5, 2)
    assert outcomes(running.db)[early.command_id] == ("applied", None)


async def _parked(db: Path, n: int) -> bool:
    return len(query(db, "SELECT 1 FROM parked_events")) == n


async def test_a_stock_event_whose_create_never_comes_ends_as_unknown_item(event_log: EventLog, data_dir: Path) -> None:
    orphan = reserve(str(uuid.uuid4()), 1)
    async with running_listener(event_log, data_dir, orphan_wait=0.3) as running:
        await event_log.publish([message(orphan)])
        await eventually(lambda: _more_than(running.db, 0))
    assert outcomes(running.db)[orphan.command_id] == ("rejected", "unknown_item")
    assert query(running.db, "SELECT COUNT(*) FROM parked_events") == [(0,)]


async def test_a_stale_expected_version_is_rejected_as_version_conflict(event_log: EventLog, data_dir: Path) -> None:
    item = str(uuid.uuid4())
    async with running_listener(event_log, data_dir) as running:
        await event_log.publish([message(create(item, "VERS", quantity=5))])
        await eventually(lambda: _more_than(running.db, 0))
        stale = reserve(item, 1, expected_version=7)
        fresh = reserve(item, 1, expected_version=1)
        await event_log.publish([message(stale), message(fresh)])
        await eventually(lambda: _more_than(running.db, 2))
    result = outcomes(running.db)
    assert result[stale.command_id] == ("rejected", "version_conflict")
    assert result[fresh.command_id] == ("applied", None)


async def test_changes_are_announced_in_commit_order_after_the_cache(event_log: EventLog, data_dir: Path) -> None:
    item = str(uuid.uuid4())
    async with running_listener(event_log, data_dir) as running:
        await event_log.publish([message(create(item, "FEED", quantity=3))])
        await eventually(lambda: _more_than(running.db, 0))
        await event_log.publish([message(event(EventType.ITEM_UPDATED, item, _rename()))])
        changes = await read_topic(event_log, CHANGES_TOPIC, 4)
        cached = await running.relay._cache.get_item(item)
    seqs = [json.loads(r.value or b"{}")["seq"] for r in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = [json.loads(r.value or b"{}")["kind"] for r in changes]
    assert kinds.count("outcome") == 2 and kinds.count("item") == 2
    assert cached is not None and cached.version == 2


def _rename():  # type: ignore[no-untyped-def]
    from app.domain.catalogue import ItemUpdatedData

    return ItemUpdatedData(name="Renamed", description="new")


async def test_changes_committed_but_not_published_go_out_on_the_next_start(
    event_log: EventLog, data_dir: Path
) -> None:
    """The outbox: a listener that died between commit and publish loses no notification."""
    item = str(uuid.uuid4())
    async with running_listener(event_log, data_dir, relay_running=False) as running:
        await event_log.publish([message(create(item, "OUTBOX", quantity=1))])
        await eventually(lambda: _more_than(running.db, 0))
        assert await running.store.unsent_count() == 2
    async with running_listener(event_log, data_dir) as restarted:
        await eventually(lambda: _all_sent(restarted))
        changes = await read_topic(event_log, CHANGES_TOPIC, 2)
    assert {json.loads(r.value or b"{}")["item_id"] for r in changes} == {item}


async def _all_sent(running) -> bool:  # type: ignore[no-untyped-def]
    return await running.store.unsent_count() == 0


def _hostile(item_id: str) -> list[tuple[str, bytes]]:
    good = json.loads(message(reserve(item_id, 1)).value or b"{}")

    def variant(**change: object) -> bytes:
        return json.dumps({**good, **change}).encode()

    missing = {k: v for k, v in good.items() if k != "command_id"}
    return [
        ("bad json", b'{"event_id": '),
        ("not an object", b"[1, 2, 3]"),
        ("wrong schema version", variant(schema_version=99)),
        ("unknown type", variant(event_type="inventory.stock.stolen")),
        ("missing field", json.dumps(missing).encode()),
        ("negative quantity", variant(data={"quantity": -5})),
        ("huge payload", variant(data={"quantity": 1, "padding": "x" * 500_000})),
        ("sql in a field", variant(location="MAIN'; DROP TABLE items; --")),
    ]


async def test_hostile_events_are_dead_lettered_with_reasons_and_disturb_nothing(
    event_log: EventLog, data_dir: Path
) -> None:
    item = str(uuid.uuid4())
    hostile = _hostile(item)
    after = reserve(item, 2)
    async with running_listener(event_log, data_dir) as running:
        await event_log.publish([message(create(item, "HOSTILE", quantity=10))])
        await eventually(lambda: _more_than(running.db, 0))
        await event_log.publish([Message(STOCK_TOPIC, item.encode(), raw) for _, raw in hostile] + [message(after)])
        await eventually(lambda: _more_than(running.db, 1))
        dead = await read_topic(event_log, DLQ_TOPIC, len(hostile))
    assert level(running.db, item) == (10, 2)  # only the good event after them was applied
    assert query(running.db, "SELECT COUNT(*) FROM items") == [(1,)]
    errors = [row[0] for row in query(running.db, "SELECT error FROM dead_letters ORDER BY id")]
    assert len(errors) == len(hostile) and all(errors)
    assert any("schema_version" in e for e in errors) and any("unknown event_type" in e for e in errors)
    assert any("invalid data" in e for e in errors)
    assert sorted(len(d.value or b"") for d in dead) == sorted(len(raw) for _, raw in hostile)


async def test_a_sku_freed_by_a_delete_is_taken_by_a_create_in_the_same_batch(
    event_log: EventLog, data_dir: Path
) -> None:
    # Deletes and creates of other items land in one batch in either order; when the delete
    # comes first, the write must free the SKU before it inserts the new row (it once looped on
    # the unique index, retrying the batch for ever).
    from app.domain.catalogue.items import ItemDeletedData

    olds = [str(uuid.uuid4()) for _ in range(8)]
    async with running_listener(event_log, data_dir) as running:
        await event_log.publish([message(create(old, f"REUSE-{n}", quantity=1)) for n, old in enumerate(olds)])
        await eventually(lambda: _more_than(running.db, len(olds) - 1))
        pairs = []
        for n, old in enumerate(olds):
            pairs += [event(EventType.ITEM_DELETED, old, ItemDeletedData()), create(str(uuid.uuid4()), f"REUSE-{n}")]
        await event_log.publish([message(e) for e in pairs])
        await eventually(lambda: _more_than(running.db, len(olds) * 3 - 1))
    statuses = outcomes(running.db)
    assert all(statuses[e.command_id][0] == "applied" for e in pairs[::2])  # every delete
    live = query(running.db, "SELECT sku FROM items WHERE deleted_at IS NULL AND sku LIKE 'REUSE-%'")
    taken = sum(1 for e in pairs[1::2] if statuses[e.command_id][0] == "applied")
    assert len(live) == taken  # each SKU held once, by its new item when the create won
