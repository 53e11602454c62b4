"""The listener's consumer loop: the only writer of the inventory database.

Each fetched batch is decoded, planned and written in one transaction together with the
consumed positions, so a crash at any point either keeps the whole batch or none of it.
Poison messages go to the dead-letter topic before the transaction that moves past them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from app.clock import to_rfc3339, utc_now
from app.domain.catalogue import decode_event
from app.domain.events import COMMAND_TOPICS, DLQ_TOPIC, REPLAY_HEADER, Event, PoisonMessage
from app.eventlog.base import EventConsumer, EventLog, LogUnavailable, Message, Record, TopicPartition
from app.eventlog.topics import LISTENER_GROUP
from app.listener.expiry import ExpiryPublisher
from app.listener.planner import Plan, Planner
from app.listener.store import Conflict, DeadLetter, InventoryStore
from app.metrics import (
    ADJUSTED_UNITS,
    ADJUSTMENTS,
    APPLY_SECONDS,
    CONFLICTS,
    CONSUMER_LAG,
    DEAD_LETTERS,
    DUPLICATES_SKIPPED,
    EVENTS_APPLIED,
    OUTCOMES,
    PRUNED_ROWS,
    RESERVATIONS_CLOSED,
    RETRIES,
    STOCK_ALERTS,
)

log = logging.getLogger(__name__)

ORPHAN_CHECK_SECONDS = 0.25
LAG_CHECK_SECONDS = 2.0
EXPIRY_CHECK_SECONDS = 0.25
COMMIT_SECONDS = 1.0


class Notifier(Protocol):
    """Told after each commit (the outbox relay)."""

    def notify(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 0.05
    max_seconds: float = 5.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2 ** min(attempt, 20)))


@dataclass(frozen=True)
class Retention:
    """How long the listener keeps rows that only recent readers need (docs/decisions.md)."""

    # Changes in the outbox, for SSE clients resuming with Last-Event-ID; older ones get `reset`.
    changes_seconds: float = 24 * 3600
    # Applied event ids, to drop a second copy of an event; a retry must come within this window.
    processed_seconds: float = 7 * 24 * 3600
    every_seconds: float = 30.0
    rows_per_round: int = 10_000


@dataclass
class ListenerStatus:
    """What /ready reports about the listener."""

    running: bool = False
    log_connected: bool = False
    database_ok: bool = True
    lag: int | None = None
    last_error: str | None = None
    applied: int = 0
    started_at: float = field(default_factory=time.monotonic)


def dead_letter_message(letter: DeadLetter) -> Message:
    headers = (
        *letter.headers,
        ("dlq-source-topic", letter.topic.encode()),
        ("dlq-source-partition", str(letter.partition).encode()),
        ("dlq-source-offset", str(letter.offset).encode()),
        ("dlq-error", letter.error.encode()[:1000]),
        ("dlq-attempts", str(letter.attempts).encode()),
        ("dlq-failed-at", utc_now().encode()),
    )
    return Message(DLQ_TOPIC, letter.key, letter.value, headers)


class Listener:
    def __init__(
        self,
        event_log: EventLog,
        store: InventoryStore,
        relay: Notifier,
        *,
        batch_size: int = 2000,
        orphan_wait: float = 10.0,
        retry: RetryPolicy | None = None,
        retention: Retention | None = None,
        prune_floor: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._log = event_log
        self._store = store
        self._relay = relay
        self._batch_size = batch_size
        self._orphan_wait = orphan_wait
        self._retry = retry or RetryPolicy()
        self._retention = retention or Retention()
        # The newest change another reader of the outbox has taken (app/bootstrap.py wires the
        # webhook fan-out's cursor): nothing after it is pruned.
        self._prune_floor = prune_floor
        self._next_prune = 0.0
        self.status = ListenerStatus()
        self._next_orphan_check = 0.0
        self._next_lag_check = 0.0
        self._expiries = ExpiryPublisher(event_log, store)
        self._next_expiry_check = 0.0

    async def run(self) -> None:
        """Consume until cancelled, reconnecting to the log whenever it goes away."""
        self.status.running = True
        attempt = 0
        try:
            while True:
                consumer = self._log.consumer(
                    COMMAND_TOPICS,
                    group_id=LISTENER_GROUP,
                    start_at="earliest",
                    positions=self._store.positions,
                )
                try:
                    await consumer.start()
                except LogUnavailable as exc:
                    self._degraded(f"event log unreachable: {exc}")
                    attempt += 1
                    await asyncio.sleep(self._retry.delay(attempt))
                    continue
                attempt = 0
                self.status.log_connected = True
                try:
                    await self._consume(consumer)
                except LogUnavailable as exc:
                    self._degraded(f"event log lost: {exc}")
                finally:
                    self.status.log_connected = False
                    await consumer.stop()
        finally:
            self.status.running = False

    def _degraded(self, message: str) -> None:
        if self.status.last_error != message:
            log.warning("%s", message)
        self.status.last_error = message

    async def _consume(self, consumer: EventConsumer) -> None:
        done: dict[TopicPartition, int] = {}
        next_commit = 0.0
        while True:
            records = await consumer.fetch(self._batch_size, timeout=ORPHAN_CHECK_SECONDS)
            if records:
                await self.process(records)
                done.update(_next_positions(records))
            if done and time.monotonic() >= next_commit:
                # Only for lag and tools: our own positions were committed with the data, so
                # telling the log once a second is plenty.
                await consumer.commit(done)
                done = {}
                next_commit = time.monotonic() + COMMIT_SECONDS
            await self._expire_orphans()
            await self._publish_expiries()
            await self._prune()
            await self._report_lag(consumer)

    async def _report_lag(self, consumer: EventConsumer) -> None:
        now = time.monotonic()
        if now < self._next_lag_check:
            return
        self._next_lag_check = now + LAG_CHECK_SECONDS
        self.status.lag = await consumer.lag()
        if self.status.lag is not None:
            CONSUMER_LAG.set(self.status.lag)

    # --- one batch ----------------------------------------------------------------------

    async def process(self, records: Sequence[Record]) -> None:
        """Apply a batch exactly once, retrying as long as it takes; never skip a record silently."""
        decoded: list[tuple[Record, Event]] = []
        poison: list[DeadLetter] = []
        for record in records:
            try:
                decoded.append((record, decode_event(record.value)))
            except PoisonMessage as exc:
                poison.append(_dead_letter(record, str(exc), attempts=1))
        await self._apply_with_retries(list(records), decoded, poison)

    async def _apply_with_retries(
        self, records: list[Record], decoded: list[tuple[Record, Event]], poison: list[DeadLetter]
    ) -> None:
        failures = 0
        attempt = 0
        dead_lettered: set[tuple[str, int, int]] = set()
        while True:
            attempt += 1
            try:
                with APPLY_SECONDS.time():
                    await self._apply(records, decoded, poison, dead_lettered)
                self.status.database_ok = True
                self._relay.notify()
                return
            except Conflict as exc:
                CONFLICTS.inc()
                log.info("write conflict, planning the batch again: %s", exc)
                await asyncio.sleep(self._retry.delay(min(attempt, 3)))
            except (sqlite3.OperationalError, LogUnavailable) as exc:
                # Busy or failing database, or the log: transient. Keep the positions where they
                # are and try again; never dead-letter good events because a disk is full.
                RETRIES.labels("transient").inc()
                self.status.database_ok = not isinstance(exc, sqlite3.OperationalError)
                self._degraded(f"batch not applied, retrying: {exc!r}")
                await asyncio.sleep(self._retry.delay(attempt))
            except Exception as exc:
                failures += 1
                RETRIES.labels("error").inc()
                log.exception("batch failed (attempt %d)", failures)
                if failures < self._retry.max_attempts:
                    await asyncio.sleep(self._retry.delay(failures))
                    continue
                await self._isolate_failure(records, decoded, poison, exc, failures)
                return

    async def _isolate_failure(
        self,
        records: list[Record],
        decoded: list[tuple[Record, Event]],
        poison: list[DeadLetter],
        exc: Exception,
        attempts: int,
    ) -> None:
        """A batch keeps failing: apply its records one by one so only the culprit is dead-lettered."""
        if len(records) == 1:
            letter = _dead_letter(records[0], f"failed after {attempts} attempts: {exc!r}", attempts=attempts)
            await self._apply_with_retries(records, [], [letter])
            return
        by_offset = {(r.topic, r.partition, r.offset): e for r, e in decoded}
        poison_by_offset = {(d.topic, d.partition, d.offset): d for d in poison}
        for record in records:
            key = (record.topic, record.partition, record.offset)
            event = by_offset.get(key)
            await self._apply_with_retries(
                [record],
                [(record, event)] if event is not None else [],
                [poison_by_offset[key]] if key in poison_by_offset else [],
            )

    async def _apply(
        self,
        records: list[Record],
        decoded: list[tuple[Record, Event]],
        poison: list[DeadLetter],
        dead_lettered: set[tuple[str, int, int]],
    ) -> None:
        tps = sorted({r.position for r in records})
        stored = await self._store.positions(tps)
        fresh = [(r, e) for r, e in decoded if r.offset >= stored.get(r.position, 0)]
        seen = await self._store.processed(e.event_id for _, e in fresh)
        loaded = await self._store.load([e for _, e in fresh])
        planner = Planner(
            loaded,
            now=utc_now(),
            now_epoch=time.time(),
            orphan_wait=self._orphan_wait,
            default_threshold=self._store.low_stock_threshold,
        )
        duplicates = 0
        for record, event in fresh:
            if event.event_id in seen:
                duplicates += 1
                continue
            seen.add(event.event_id)
            planner.apply(event, record.value or b"")
        plan = planner.plan
        ends = _next_positions(records)
        plan.positions = {tp: max(end, stored.get(tp, 0)) for tp, end in ends.items()}
        expected: dict[TopicPartition, int | None] = {tp: stored.get(tp) for tp in tps}
        late_poison = [d for d in poison if d.offset >= stored.get((d.topic, d.partition), 0)]
        # The dead letter is in the DLQ topic before the transaction that moves past it commits:
        # a crash in between can duplicate it there, never lose it.
        unpublished = [d for d in late_poison if (d.topic, d.partition, d.offset) not in dead_lettered]
        if unpublished:
            await self._publish_dead_letters(unpublished)
            dead_lettered.update((d.topic, d.partition, d.offset) for d in unpublished)
        replayed = [int(r.header(REPLAY_HEADER) or 0) for r in records if (r.header(REPLAY_HEADER) or "").isdigit()]
        await self._store.write(plan, expected_positions=expected, dead_letters=late_poison, replayed=replayed)
        EVENTS_APPLIED.inc(len(fresh) - duplicates)
        DUPLICATES_SKIPPED.inc(duplicates + len(decoded) - len(fresh))
        self.status.applied += len(fresh) - duplicates
        # Counted per label set, not per outcome: a batch holds thousands of the same few.
        counted = Counter((o.event_type, o.status, o.reason or "") for o in plan.outcomes)
        for labels, n in counted.items():
            OUTCOMES.labels(*labels).inc(n)
        _count_movements(plan)
        for alert in plan.alerts:  # committed: counted once (a retried batch raised nothing yet)
            STOCK_ALERTS.labels(alert.kind.value).inc()

    async def _publish_dead_letters(self, letters: list[DeadLetter]) -> None:
        await self._log.publish([dead_letter_message(d) for d in letters])
        for letter in letters:
            DEAD_LETTERS.labels("poison" if letter.attempts == 1 else "failed").inc()
            log.warning("dead-lettered %s[%d]@%d: %s", letter.topic, letter.partition, letter.offset, letter.error)

    # --- stock events waiting for their item ----------------------------------------------

    async def _expire_orphans(self) -> None:
        now = time.monotonic()
        if now < self._next_orphan_check:
            return
        self._next_orphan_check = now + ORPHAN_CHECK_SECONDS
        with contextlib.suppress(sqlite3.OperationalError):
            expired = await self._store.expired_parked(time.time())
            if not expired:
                return
            loaded = await self._store.load([p.event for p in expired])
            planner = Planner(loaded, now=utc_now(), now_epoch=time.time(), orphan_wait=self._orphan_wait)
            for parked in expired:
                planner.expire(parked)
            try:
                await self._store.write(planner.plan, expected_positions={})
            except Conflict:
                return  # the create arrived meanwhile; the next round sees it
            self._relay.notify()

    # --- reservations that expire ----------------------------------------------------------

    async def _publish_expiries(self) -> None:
        now = time.monotonic()
        if now < self._next_expiry_check:
            return
        self._next_expiry_check = now + EXPIRY_CHECK_SECONDS
        try:
            await self._expiries.publish_due()
        except sqlite3.OperationalError as exc:
            log.warning("expiries postponed: %r", exc)
        except LogUnavailable as exc:
            # Nothing was marked as published: the next round tries again.
            self._degraded(f"expiries not published: {exc}")
            raise

    # --- retention ---------------------------------------------------------------------------

    async def _prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + self._retention.every_seconds
        wall = time.time()
        limit = self._retention.rows_per_round
        try:
            floor = await self._prune_floor() if self._prune_floor is not None else None
            pruned = await self._store.prune(
                changes_before=to_rfc3339(datetime.fromtimestamp(wall - self._retention.changes_seconds, UTC)),
                processed_before=int(wall - self._retention.processed_seconds),
                limit=limit,
                keep_after=floor,
            )
        except sqlite3.OperationalError as exc:
            log.warning("pruning postponed: %r", exc)
            return
        PRUNED_ROWS.labels("changes").inc(pruned.changes)
        PRUNED_ROWS.labels("processed_events").inc(pruned.processed_events)
        if pruned.changes >= limit or pruned.processed_events >= limit:
            self._next_prune = now  # more to do: another round after the next batch


def _count_movements(plan: Plan) -> None:
    """Reasons and closed reservations for /metrics: what loss-prevention reads."""
    adjustments: Counter[str] = Counter()
    units: Counter[str] = Counter()
    for row in plan.history:
        if row.reason is None:
            continue
        adjustments[row.reason] += 1
        units[row.reason] += (
            (row.expected or 0) - row.quantity_delta if row.reason == "transit_loss" else abs(row.quantity_delta)
        )
    for reason, n in adjustments.items():
        ADJUSTMENTS.labels(reason).inc(n)
        ADJUSTED_UNITS.labels(reason).inc(units[reason])
    closed = Counter(r.state.value for r in plan.reservations.values() if not r.open)
    for state, n in closed.items():
        RESERVATIONS_CLOSED.labels(state).inc(n)


def _next_positions(records: Sequence[Record]) -> dict[TopicPartition, int]:
    ends: dict[TopicPartition, int] = {}
    for record in records:
        ends[record.position] = max(ends.get(record.position, 0), record.offset + 1)
    return ends


def _dead_letter(record: Record, error: str, *, attempts: int) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=record.headers,
        error=error,
        attempts=attempts,
    )
