"""The contract both event log adapters keep: durable, keyed, ordered per partition."""

from __future__ import annotations

import asyncio

from app.domain.events import CHANGES_TOPIC, ITEMS_TOPIC, STOCK_TOPIC
from app.eventlog.base import EventLog, Message, Record, TopicPartition


async def drain(consumer, count: int, timeout: float = 30) -> list[Record]:  # type: ignore[no-untyped-def]
    records: list[Record] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(records) < count and asyncio.get_running_loop().time() < deadline:
        records += await consumer.fetch(1000, timeout=0.5)
    return records


async def test_published_messages_arrive_in_key_order_with_headers(event_log: EventLog) -> None:
    messages = [
        Message(STOCK_TOPIC, f"item-{n % 5}".encode(), str(n).encode(), (("n", str(n).encode()),)) for n in range(300)
    ]
    await event_log.publish(messages)
    consumer = event_log.consumer([STOCK_TOPIC], group_id=None, start_at="earliest")
    await consumer.start()
    try:
        records = await drain(consumer, 300)
    finally:
        await consumer.stop()
    assert len(records) == 300
    by_key: dict[bytes, list[int]] = {}
    for record in records:
        assert record.header("n") == record.value.decode()  # type: ignore[union-attr]
        assert record.topic == STOCK_TOPIC
        by_key.setdefault(record.key or b"", []).append(int(record.value or b"0"))
    for values in by_key.values():
        assert values == sorted(values)  # per-key order kept
    assert len({r.partition for r in records}) > 1  # keys spread over the 3 partitions


async def test_a_single_partition_topic_keeps_publish_order_across_batches(event_log: EventLog) -> None:
    # Enough to fill several record batches, with one message larger than a whole batch between.
    values = [f"{n}:".encode() + b"x" * 2000 for n in range(400)]
    values[150] = b"150:" + b"y" * 400_000
    await event_log.publish([Message(CHANGES_TOPIC, b"k", v, (("n", str(n).encode()),)) for n, v in enumerate(values)])
    consumer = event_log.consumer([CHANGES_TOPIC], group_id=None, start_at="earliest")
    await consumer.start()
    try:
        records = await drain(consumer, len(values))
    finally:
        await consumer.stop()
    assert [r.value for r in records] == values
    assert [r.header("n") for r in records] == [str(n) for n in range(len(values))]


async def test_a_group_consumer_starts_from_the_positions_we_stored(event_log: EventLog) -> None:
    await event_log.publish([Message(ITEMS_TOPIC, b"k", str(n).encode()) for n in range(10)])
    first = event_log.consumer([ITEMS_TOPIC], group_id="g", start_at="earliest")
    await first.start()
    records = await drain(first, 10)
    await first.stop()
    partition = records[0].partition
    stored: dict[TopicPartition, int] = {(ITEMS_TOPIC, partition): 7}

    async def positions(_: list[TopicPartition]) -> dict[TopicPartition, int]:
        return stored

    second = event_log.consumer([ITEMS_TOPIC], group_id="g", start_at="earliest", positions=positions)
    await second.start()
    try:
        again = await drain(second, 3)
    finally:
        await second.stop()
    assert [int(r.value or b"") for r in again] == [7, 8, 9]


async def test_a_tail_consumer_sees_only_what_comes_after_it_started(event_log: EventLog) -> None:
    await event_log.publish([Message(STOCK_TOPIC, b"k", b"old")])
    tail = event_log.consumer([STOCK_TOPIC], group_id=None, start_at="latest")
    await tail.start()
    try:
        await event_log.publish([Message(STOCK_TOPIC, b"k", b"new")])
        records = await drain(tail, 1)
    finally:
        await tail.stop()
    assert [r.value for r in records] == [b"new"]


async def test_lag_counts_what_is_not_yet_read(event_log: EventLog) -> None:
    await event_log.publish([Message(ITEMS_TOPIC, b"k", b"x") for _ in range(5)])
    consumer = event_log.consumer([ITEMS_TOPIC], group_id="lag", start_at="earliest")
    await consumer.start()
    try:
        await drain(consumer, 5)
        assert await consumer.lag() == 0
    finally:
        await consumer.stop()
