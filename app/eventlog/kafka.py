"""The Apache Kafka adapter (aiokafka): idempotent producer with acks=all, and consumers.

The producer starts lazily and again after a failure, so a service that came up while the
broker was away starts working as soon as the broker answers, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from app.eventlog.base import (
    EventConsumer,
    LogUnavailable,
    Message,
    PositionLoader,
    Record,
    StartAt,
    TopicSpec,
)
from app.eventlog.base import (
    TopicPartition as TP,
)
from app.eventlog.topics import TOPICS

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
# Don't hammer a broker that is away: one connection attempt per interval at most.
RECONNECT_INTERVAL_SECONDS = 1.0


# Topics of one partition (the change feed, the DLQ) need no partitioner: their messages go out as
# whole record batches, one future per batch instead of one per message. The relay publishes a
# record per committed change, and per-message producer work was a third of the listener's CPU.
SINGLE_PARTITION_TOPICS = frozenset(spec.name for spec in TOPICS if spec.partitions == 1)


async def _send_batches(producer: AIOKafkaProducer, topic: str, messages: Sequence[Message]) -> list[Any]:
    """Append the messages, in order, to as few record batches for partition 0 as fit."""
    futures: list[Any] = []
    batch = producer.create_batch()
    for m in messages:
        if _append(batch, m):
            continue
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=0))
        batch = producer.create_batch()
        if not _append(batch, m):
            # Larger than a whole batch: the ordinary path sends it or names the size error. The
            # refused append closed this batch; the next message starts another.
            futures.append(await producer.send(topic, m.value, key=m.key, headers=list(m.headers), partition=0))
    if batch.record_count():
        futures.append(await producer.send_batch(batch, topic, partition=0))
    return futures


def _append(batch: Any, m: Message) -> bool:
    return batch.append(timestamp=None, key=m.key, value=m.value, headers=list(m.headers)) is not None


class KafkaEventLog:
    """Topic names are the logical ones of app/domain/events.py; ``topic_prefix`` puts a whole deployment
    (or a test) in a namespace of its own on a shared cluster."""

    def __init__(self, bootstrap: str, *, client_id: str, publish_timeout: float = 5.0, topic_prefix: str = "") -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.publish_timeout = publish_timeout
        self.prefix = topic_prefix
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._last_attempt = 0.0
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        with contextlib.suppress(LogUnavailable):
            await self._ready_producer()

    async def stop(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._starting:
            if self._producer is not None:
                return self._producer
            if time.monotonic() - self._last_attempt < RECONNECT_INTERVAL_SECONDS:
                raise LogUnavailable("Kafka is unreachable")
            self._last_attempt = time.monotonic()
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=self.client_id,
                acks="all",
                enable_idempotence=True,
                # No lingering: concurrent sends still share a request while one is in flight, and
                # a lone command is not held back (1 ms of linger cost ~2 ms per publish here).
                linger_ms=0,
                request_timeout_ms=max(1000, int(self.publish_timeout * 1000)),
                max_batch_size=256 * 1024,
            )
            try:
                async with asyncio.timeout(self.publish_timeout):
                    await producer.start()
            except (KafkaError, OSError, TimeoutError) as exc:
                # Bounded too: a start cut short by the timeout must not leave the caller (a
                # service starting up, or a request) waiting on the half-started client's close.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.publish_timeout):
                        await producer.stop()
                raise LogUnavailable(f"Kafka is unreachable: {exc!r}") from None
            self._producer = producer
            return producer

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=f"{self.client_id}-admin")
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [spec for spec in specs if self.prefix + spec.name not in existing]
            if not missing:
                return
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=self.prefix + spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=1,
                        topic_configs={"retention.ms": str(spec.retention_ms or -1)},
                    )
                    for spec in missing
                ]
            )
            for name, code, *_ in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise LogUnavailable(f"could not create topic {name}: error code {code}")
            log.info("created topics %s", ", ".join(spec.name for spec in missing))
        except KafkaError as exc:
            raise LogUnavailable(f"could not create topics: {exc!r}") from None
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def publish(self, messages: Sequence[Message]) -> None:
        producer = await self._ready_producer()

        async def send_all() -> None:
            futures = []
            batched: dict[str, list[Message]] = {}
            for m in messages:
                if m.topic in SINGLE_PARTITION_TOPICS:
                    batched.setdefault(m.topic, []).append(m)
                else:
                    futures.append(
                        await producer.send(self.prefix + m.topic, m.value, key=m.key, headers=list(m.headers))
                    )
            for topic, topic_messages in batched.items():
                futures.extend(await _send_batches(producer, self.prefix + topic, topic_messages))
            await asyncio.gather(*futures)

        try:
            async with asyncio.timeout(self.publish_timeout):
                if len(messages) == 1 and messages[0].topic not in SINGLE_PARTITION_TOPICS:
                    # A command's one event: no batching to plan, no gathering of one future.
                    m = messages[0]
                    await (await producer.send(self.prefix + m.topic, m.value, key=m.key, headers=list(m.headers)))
                else:
                    await send_all()
        except (KafkaError, OSError, TimeoutError) as exc:
            self._discard(producer)
            raise LogUnavailable(f"Kafka did not acknowledge: {exc!r}") from None

    def _discard(self, producer: AIOKafkaProducer) -> None:
        """Stop a producer that failed us, so what it still buffers expires instead of going out
        minutes later (after the client was told 503). The next publish starts a new one."""
        stop = producer.stop
        if self._producer is not producer:
            return  # already replaced by a concurrent failure
        self._producer = None
        stopping: asyncio.Task[None] = asyncio.create_task(stop())
        self._closing.add(stopping)
        for task in list(self._closing):
            if task.done():
                self._closing.discard(task)

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str | None,
        start_at: StartAt = "earliest",
        positions: PositionLoader | None = None,
    ) -> EventConsumer:
        return KafkaConsumer(
            self.bootstrap,
            list(topics),
            group_id=None if group_id is None else self.prefix + group_id,
            start_at=start_at,
            positions=positions,
            prefix=self.prefix,
        )

    async def end_offsets(self, topics: Sequence[str]) -> dict[TP, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        try:
            await consumer.start()
            cluster = await consumer._client.fetch_all_metadata()
            tps = [
                TopicPartition(self.prefix + topic, p)
                for topic in topics
                for p in sorted(cluster.partitions_for_topic(self.prefix + topic) or ())
            ]
            ends = await consumer.end_offsets(tps) if tps else {}
            return {(tp.topic.removeprefix(self.prefix), tp.partition): offset for tp, offset in ends.items()}
        except KafkaError as exc:
            raise LogUnavailable(f"cannot read offsets: {exc!r}") from None
        finally:
            await consumer.stop()

    async def ping(self) -> bool:
        try:
            producer = await self._ready_producer()
            async with asyncio.timeout(2.0):
                return bool(await producer.client.fetch_all_metadata())
        except (LogUnavailable, KafkaError, OSError, TimeoutError):
            return False


class _SeekToOurPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment, continue from the positions stored with our own data."""

    def __init__(self, consumer: AIOKafkaConsumer, loader: PositionLoader | None, prefix: str) -> None:
        self._consumer = consumer
        self._loader = loader
        self._prefix = prefix

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        tps: list[TP] = [(tp.topic.removeprefix(self._prefix), tp.partition) for tp in assigned]
        known = await self._loader(tps) if self._loader else {}
        for tp in assigned:
            # Offset 0 for partitions we never read: if retention removed it, the consumer's
            # auto_offset_reset ("earliest") moves to the first one kept. seek_to_beginning()
            # here would race with the seeks of the other partitions.
            self._consumer.seek(tp, known.get((tp.topic.removeprefix(self._prefix), tp.partition), 0))
        log.info("assigned %s", ", ".join(f"{t}[{p}]" for t, p in sorted(tps)))


class KafkaConsumer:
    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        *,
        group_id: str | None,
        start_at: StartAt,
        positions: PositionLoader | None,
        prefix: str = "",
    ) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix
        self._topics = [prefix + topic for topic in topics]
        self._group_id = group_id
        self._start_at = start_at
        self._loader = positions
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset=self._start_at,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # Notice new topics and partitions within half a minute, not five.
            metadata_max_age_ms=30_000,
        )
        try:
            await consumer.start()
            if self._group_id is not None:
                consumer.subscribe(
                    topics=self._topics, listener=_SeekToOurPositions(consumer, self._loader, self._prefix)
                )
            else:
                await self._assign_all(consumer)
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise LogUnavailable(f"Kafka is unreachable: {exc!r}") from None
        self._consumer = consumer

    async def _assign_all(self, consumer: AIOKafkaConsumer) -> None:
        # A topic created a moment ago may not be in the metadata yet: ask until it is.
        deadline = time.monotonic() + 30
        while True:
            # topics() fetches fresh metadata but does not keep it; ask the fetched copy.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = {topic: cluster.partitions_for_topic(topic) for topic in self._topics}
            if all(partitions.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        missing = [topic for topic, found in partitions.items() if not found]
        if missing:
            raise LogUnavailable(f"topics not found: {', '.join(missing)}")
        tps = [TopicPartition(topic, p) for topic in self._topics for p in sorted(partitions[topic] or ())]
        consumer.assign(tps)
        logical = [(tp.topic.removeprefix(self._prefix), tp.partition) for tp in tps]
        known = await self._loader(logical) if self._loader else {}
        # One reset call for all partitions first, then our own positions: a reset running
        # alongside individual seeks can undo them.
        if self._start_at == "latest":
            await consumer.seek_to_end(*tps)
        else:
            await consumer.seek_to_beginning(*tps)
        for tp in tps:
            offset = known.get((tp.topic.removeprefix(self._prefix), tp.partition))
            if offset is not None:
                consumer.seek(tp, offset)

    async def stop(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = None

    async def fetch(self, max_records: int, timeout: float) -> list[Record]:
        assert self._consumer is not None
        try:
            batches = await self._consumer.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        except KafkaError as exc:
            raise LogUnavailable(f"fetch failed: {exc!r}") from None
        return [
            Record(
                topic=r.topic.removeprefix(self._prefix),
                partition=r.partition,
                offset=r.offset,
                key=r.key,
                value=r.value,
                headers=tuple((k, bytes(v)) for k, v in (r.headers or ())),
                timestamp_ms=r.timestamp,
            )
            for records in batches.values()
            for r in records
        ]

    async def commit(self, positions: dict[TP, int]) -> None:
        if self._consumer is None or self._group_id is None:
            return
        assigned = self._consumer.assignment()
        offsets = {
            TopicPartition(self._prefix + t, p): o
            for (t, p), o in positions.items()
            if TopicPartition(self._prefix + t, p) in assigned
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # Only advisory: our own positions are committed with the data.
            log.info("offset commit to Kafka skipped: %r", exc)

    async def seek(self, positions: dict[TP, int]) -> None:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        for (topic, partition), offset in positions.items():
            tp = TopicPartition(self._prefix + topic, partition)
            if tp in assigned:
                self._consumer.seek(tp, offset)

    async def lag(self) -> int | None:
        if self._consumer is None:
            return None
        assigned = list(self._consumer.assignment())
        if not assigned:
            return None
        try:
            ends = await self._consumer.end_offsets(assigned)
            total = 0
            for tp in assigned:
                total += max(0, ends[tp] - await self._consumer.position(tp))
            return total
        except (KafkaError, AssertionError):
            return None
