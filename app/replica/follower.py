"""Keep a node's replica current: follow the listener's change records over Kafka, fill what
Kafka did not bring from the listener's outbox, and apply them strictly in sequence order.

Kafka (``inventory.changes``, read from its end with no consumer group: every node needs every
record) is the low-latency path. The outbox behind ``GET /internal/changes`` is the catch-up
path: at start, after a reconnection, when a sequence number stays missing, and when the feed
is quiet (the last records before a pause may have been published before the consumer took
its position). So a node needs no Kafka history; a node further behind than the listener keeps
its outbox takes a snapshot again.

Records arrive out of order (partitions) and twice (Kafka and the outbox): one at or below the
watermark is dropped, one beyond the next waits in a buffer until the ones before it are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from app.domain.events import CHANGES_TOPIC
from app.domain.records import Change, decode_change, encode_text, for_screens
from app.eventlog.base import EventLog, LogUnavailable
from app.jsontext import change_record
from app.replica.client import ListenerClient, Pruned, Unreachable
from app.replica.store import Received, ReplicaStore, stored_payload

log = logging.getLogger(__name__)

FETCH = 2000
PAGE = 5000
APPLY_BATCH = 2000
# A sequence number missing from Kafka for this long is fetched from the outbox: records of one
# commit travel on several partitions and may come a moment apart.
GAP_SECONDS = 0.25
# With nothing from Kafka for this long, ask the listener whether anything was missed.
QUIET_SECONDS = 2.0
# Records held beyond a gap; past this many, later ones are left to the outbox.
MAX_BUFFER = 100_000
PRUNE_SECONDS = 60.0
RETRY_MAX_SECONDS = 5.0


class AppliedChanges(Protocol):
    """Who hears of applied changes (the query role's change feed)."""

    async def applied(self, changes: list[tuple[Change, bytes]]) -> None:
        """Changes just committed to the replica, in order, already stripped for screens
        (``for_screens``), each with its JSON as published (sequence first)."""
        ...

    def jumped(self, seq: int, items: list[tuple[str, int]]) -> None:
        """The replica was replaced by a snapshot at ``seq``: the changes before it were not
        handed over one by one. ``items``: (id, version) of the items it changed."""
        ...


def screen_record(record: Received) -> tuple[Change, bytes]:
    """A received record as screens get it: without the replica-only fields."""
    stripped = for_screens(record.change)
    if stripped is record.change:
        return stripped, change_record(record.seq, record.payload)
    return stripped, change_record(record.seq, encode_text(msgspec.structs.replace(stripped, seq=0)))


class Replica:
    def __init__(
        self,
        store: ReplicaStore,
        client: ListenerClient,
        event_log: EventLog,
        *,
        retention_seconds: int,
        scratch: Path,
    ) -> None:
        self._store = store
        self._client = client
        self._log = event_log
        self._retention = retention_seconds
        # Where a snapshot is downloaded before it is installed (the node's data directory).
        self._scratch = scratch
        self._subscribers: list[AppliedChanges] = []
        self._buffer: dict[int, Received] = {}
        self._advanced = asyncio.Event()
        self._gap_since: float | None = None
        self._last_record = 0.0
        self._next_prune = 0.0
        self.watermark = 0
        # The newest sequence heard of (from Kafka or the listener).
        self.known = 0
        self.has_snapshot = False
        self.connected = False
        self.listener_ok = False
        self.catching_up = True

    # --- what others read ---------------------------------------------------------------------

    @property
    def lag(self) -> int:
        return max(0, self.known - self.watermark)

    def status(self) -> dict[str, Any]:
        """For ``/ready``: down until the first snapshot is in, degraded while catching up or
        away from Kafka."""
        if not self.has_snapshot:
            state = "down"
        elif self.connected and not self.catching_up:
            state = "ok"
        else:
            state = "degraded"
        return {"status": state, "seq": self.watermark, "lag": self.lag}

    def subscribe(self, subscriber: AppliedChanges) -> None:
        self._subscribers.append(subscriber)

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """True once every change up to ``seq`` is applied; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.watermark < seq:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            advanced = self._advanced
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await advanced.wait()
        return True

    # --- the loop -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the replica file (before any reader looks at it) and take its watermark."""
        await self._store.open()
        mark = await self._store.watermark()
        self.has_snapshot = mark is not None
        self.watermark = mark or 0
        self.known = self.watermark

    async def close(self) -> None:
        await self._client.close()
        await self._store.close()

    async def run(self) -> None:
        delay = 0.5
        while not self.has_snapshot:
            try:
                await self._snapshot()
            except (Unreachable, sqlite3.DatabaseError) as exc:
                log.warning("no snapshot yet (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
        while True:
            try:
                await self._follow()
            except Exception:
                # The watermark lives with the rows (one transaction), so starting over from the
                # file loses nothing: the outbox refills whatever was in flight.
                log.exception("replica follower failed; starting over")
                self.connected = False
                self._buffer.clear()
                await asyncio.sleep(1.0)
                with contextlib.suppress(sqlite3.Error):
                    self.watermark = await self._store.watermark() or self.watermark

    async def _follow(self) -> None:
        while True:
            consumer = self._log.consumer([CHANGES_TOPIC], group_id=None, start_at="latest")
            try:
                await consumer.start()
                self.connected = True
                # What was committed before the consumer took its position comes from the outbox.
                await self._catch_up()
                while True:
                    records = await consumer.fetch(FETCH, timeout=1.0)
                    for record in records:
                        if record.value is not None:
                            self._take(record.value)
                    await self._drain()
                    if self._due_catch_up():
                        await self._catch_up()
                    await self._prune()
            except LogUnavailable as exc:
                if self.connected:
                    log.warning("change feed lost, following the listener's outbox until it returns: %s", exc)
                self.connected = False
                await self._catch_up()
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()

    def _take(self, raw: bytes) -> None:
        change = decode_change(raw)
        seq = change.seq
        self._last_record = time.monotonic()
        self.known = max(self.known, seq)
        if seq <= self.watermark or seq in self._buffer or len(self._buffer) >= MAX_BUFFER:
            return
        self._buffer[seq] = Received(seq, change, stored_payload(raw))

    async def _drain(self) -> None:
        """Apply the buffered records that follow the watermark without a gap."""
        while self.watermark + 1 in self._buffer:
            run: list[Received] = []
            seq = self.watermark + 1
            while seq in self._buffer and len(run) < APPLY_BATCH:
                run.append(self._buffer.pop(seq))
                seq += 1
            await self._apply(run)
        if self._buffer:
            if self._gap_since is None:
                self._gap_since = time.monotonic()
        else:
            self._gap_since = None
        self.catching_up = bool(self._buffer)

    def _due_catch_up(self) -> bool:
        now = time.monotonic()
        if self._gap_since is not None and now - self._gap_since >= GAP_SECONDS:
            return True
        if now - self._last_record >= QUIET_SECONDS:
            self._last_record = now  # one look per quiet period
            return True
        return False

    async def _catch_up(self) -> None:
        """Apply the listener's outbox after the watermark, page by page, until its newest; a
        snapshot when it no longer keeps them. An unreachable listener is tried again later."""
        self.catching_up = True
        try:
            while True:
                try:
                    page = await self._client.changes(self.watermark, PAGE)
                except Pruned:
                    log.warning("behind the listener's retention at seq %d: taking a snapshot", self.watermark)
                    await self._snapshot()
                    continue
                self.listener_ok = True
                self.known = max(self.known, page.last)
                records = [
                    Received(seq, decode_change(change_record(seq, payload)), payload)
                    for seq, _, _, payload in page.changes
                    if seq > self.watermark
                ]
                if records:
                    if records[0].seq != self.watermark + 1:  # pragma: no cover - the outbox is dense
                        raise RuntimeError(f"the listener's outbox skipped from {self.watermark} to {records[0].seq}")
                    for start in range(0, len(records), APPLY_BATCH):
                        await self._apply(records[start : start + APPLY_BATCH])
                await self._drain()
                if not page.changes or self.watermark >= page.last:
                    break
        except Unreachable as exc:
            if self.listener_ok:
                log.warning("listener unreachable, following Kafka only: %s", exc)
            self.listener_ok = False
        finally:
            self._gap_since = time.monotonic() if self._buffer else None
            self.catching_up = bool(self._buffer)

    async def _apply(self, records: Sequence[Received]) -> None:
        self.watermark = await self._store.apply(records)
        for seq in [s for s in self._buffer if s <= self.watermark]:
            del self._buffer[seq]
        self._wake()
        if self._subscribers:
            screened = [screen_record(r) for r in records]
            for subscriber in self._subscribers:
                await subscriber.applied(screened)

    async def _snapshot(self) -> None:
        self._scratch.mkdir(parents=True, exist_ok=True)
        path = self._scratch / "replica-snapshot.download"
        try:
            seq = await self._client.snapshot(path)
            # The first snapshot fills an empty replica: no cache holds anything older yet.
            moved = await self._store.install(path, seq, changed=self.has_snapshot)
        finally:
            path.unlink(missing_ok=True)
        log.info("installed a snapshot of the read model at seq %d", seq)
        self.has_snapshot = True
        self.listener_ok = True
        self.watermark = seq
        self.known = max(self.known, seq)
        for stale in [s for s in self._buffer if s <= seq]:
            del self._buffer[stale]
        self._wake()
        for subscriber in self._subscribers:
            subscriber.jumped(seq, moved)

    def _wake(self) -> None:
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    async def _prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_SECONDS
        await self._store.prune(self._retention)
