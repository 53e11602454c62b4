#!/usr/bin/env python3
"""End-to-end check of the local broker with the aiokafka client.

Run against a started broker (kafka/broker.sh start), from the project's venv:

    .venv/bin/python kafka/smoke_test.py [--bootstrap 127.0.0.1:9092]

(default: $INVENTORY_KAFKA_BOOTSTRAP, else 127.0.0.1:$KAFKA_PORT, else :9092).

It creates a fresh topic with 3 partitions (AIOKafkaAdminClient), produces
1000 keyed messages with acks=all and idempotence, consumes them back in a
consumer group, checks that every message arrived exactly once and in order
within its partition, and deletes the topic. Any UNSUPPORTED_VERSION answer
from the broker, raised or only logged by aiokafka, fails the run.

Exit status 0 when everything checks out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnsupportedVersionError, for_code


class UnsupportedVersionLog(logging.Handler):
    """Collects aiokafka log records that mention an unsupported version."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "UnsupportedVersion" in text or "UNSUPPORTED_VERSION" in text:
            self.records.append(f"{record.name}: {text}")


def check_errors(kind: str, entries: Iterable[Sequence[Any]]) -> None:
    """Raise for any non-zero error code in (topic, error_code, ...) entries."""
    for entry in entries:
        topic, code = entry[0], entry[1]
        if code != 0:
            raise for_code(code)(f"{kind} {topic}: error code {code}")


def step(name: str, started: float) -> None:
    print(f"  {name:<34} {time.monotonic() - started:6.2f}s", flush=True)


async def run(bootstrap: str, n_messages: int, partitions: int, consume_s: float) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:12]}"
    group = f"{topic}-group"
    print(f"broker {bootstrap}, topic {topic}, {n_messages} messages, {partitions} partitions")

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="smoke-admin")
    await admin.start()
    try:
        t = time.monotonic()
        resp = await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs={"retention.ms": str(3600 * 1000)},
                )
            ]
        )
        check_errors("create topic", resp.topic_errors)
        step("create topic", t)

        t = time.monotonic()
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            client_id="smoke-producer",
        )
        await producer.start()
        try:
            # send() only queues the record and returns a future; queue all of
            # them, then await the broker acknowledgements together.
            futures = [
                await producer.send(topic, key=f"item-{i % 37}".encode(), value=str(i).encode())
                for i in range(n_messages)
            ]
            metadata = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        per_partition = Counter(m.partition for m in metadata)
        step("produce (acks=all, idempotent)", t)
        print(f"    acknowledged per partition: {dict(sorted(per_partition.items()))}")
        if len(per_partition) != partitions:
            raise AssertionError(f"expected records in {partitions} partitions, got {dict(per_partition)}")

        t = time.monotonic()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id="smoke-consumer",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,  # the broker's group.min.session.timeout.ms
            heartbeat_interval_ms=1000,
        )
        await consumer.start()
        received: list[tuple[int, int, int]] = []  # (partition, offset, value)
        try:
            deadline = time.monotonic() + consume_s
            while len(received) < n_messages:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"received {len(received)}/{n_messages} messages in {consume_s:g}s")
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, records in batches.items():
                    received.extend((tp.partition, r.offset, int(r.value)) for r in records)
            await consumer.commit()
            committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        finally:
            await consumer.stop()
        step("consume in group + commit", t)

        values = Counter(v for _, _, v in received)
        missing = set(range(n_messages)) - set(values)
        duplicated = [v for v, c in values.items() if c > 1]
        if missing or duplicated or len(received) != n_messages:
            raise AssertionError(f"missing={sorted(missing)[:10]} duplicated={duplicated[:10]}")
        by_partition: dict[int, list[int]] = defaultdict(list)
        for partition, _offset, value in received:
            by_partition[partition].append(value)
        for partition, seq in by_partition.items():
            if seq != sorted(seq):
                raise AssertionError(f"partition {partition} out of order")
        if committed != dict(per_partition):
            raise AssertionError(f"committed offsets {committed} != produced {dict(per_partition)}")
        print(f"    all {n_messages} messages received once, in order; committed {committed}")

        t = time.monotonic()
        resp = await admin.delete_topics([topic])
        check_errors("delete topic", resp.topic_error_codes)
        step("delete topic", t)
    finally:
        await admin.close()


def main() -> int:
    # Same variables as the application and broker.sh use.
    port = os.environ.get("KAFKA_PORT", "9092")
    default = os.environ.get("INVENTORY_KAFKA_BOOTSTRAP") or f"127.0.0.1:{port}"
    parser = argparse.ArgumentParser(description="aiokafka round trip against the local broker")
    parser.add_argument("--bootstrap", default=default, help="HOST:PORT (default %(default)s)")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed for consuming")
    args = parser.parse_args()

    # aiokafka logs at DEBUG into the UNSUPPORTED_VERSION collector; only
    # its warnings and errors reach the console.
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    unsupported = UnsupportedVersionLog()
    aiokafka_log = logging.getLogger("aiokafka")
    aiokafka_log.setLevel(logging.DEBUG)
    aiokafka_log.addHandler(console)
    aiokafka_log.addHandler(unsupported)
    aiokafka_log.propagate = False

    started = time.monotonic()
    try:
        asyncio.run(run(args.bootstrap, args.messages, args.partitions, args.timeout))
    except UnsupportedVersionError as exc:
        print(f"FAILED: broker answered UNSUPPORTED_VERSION: {exc!r}", file=sys.stderr)
        return 1
    except Exception as exc:  # report any failure plainly
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if unsupported.records:
        print("FAILED: aiokafka logged UNSUPPORTED_VERSION:", file=sys.stderr)
        for line in unsupported.records:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"OK: smoke test passed in {time.monotonic() - started:.2f}s, no UNSUPPORTED_VERSION")
    return 0


if __name__ == "__main__":
    sys.exit(main())
