"""Follow the change feed and fan every change out to this process's subscribers.

Each query process reads ``inventory.changes`` from its end (no consumer group: every process
needs every change), keeps the freshness floor and the in-process cache current, and
publishes each change to the in-process Litestar channel that SSE connections subscribe to.
Changes missed while the feed was away are read back from the outbox table by sequence.
"""

from __future__ import annotations

import asyncio
import logging
import time

from litestar.channels import ChannelsPlugin

from app.cache.base import CacheUnavailable, ItemCache, entries_from_changes
from app.domain.events import CHANGES_TOPIC
from app.domain.records import Change, ItemChange, decode_change
from app.eventlog.base import EventLog, LogUnavailable
from app.jsontext import change_record
from app.queries.service import FreshnessFloor
from app.reader import InventoryReader, ReadModelUnavailable

log = logging.getLogger(__name__)

CHANNEL = "changes"
PING_SECONDS = 15.0
PING = b"0 ping\n"
GAP_PAGE = 1000


def frame(seq: int, kind: str, raw: bytes) -> bytes:
    """What travels on the in-process channel: "<seq> <kind>" on the first line, then the JSON."""
    return b"%d %s\n%s" % (seq, kind.encode(), raw)


class ChangeFeed:
    def __init__(
        self,
        event_log: EventLog,
        reader: InventoryReader,
        floor: FreshnessFloor,
        cache: ItemCache | None,
        channels: ChannelsPlugin | None = None,
    ) -> None:
        self._log = event_log
        self._reader = reader
        self._floor = floor
        self._cache = cache
        self.channels = channels
        self.connected = False
        self.last_seq = 0
        self.subscribers = 0
        self._last_sent = time.monotonic()

    async def run(self) -> None:
        self.last_seq = await self._newest_seq()
        while True:
            consumer = self._log.consumer([CHANGES_TOPIC], group_id=None, start_at="latest")
            try:
                await consumer.start()
                self.connected = True
                # Whatever was committed while we were not listening comes from the outbox.
                await self._catch_up(await self._newest_seq())
                while True:
                    records = await consumer.fetch(GAP_PAGE, timeout=1.0)
                    for record in records:
                        if record.value is not None:
                            await self._receive(record.value)
                    self._keep_alive()
            except LogUnavailable as exc:
                if self.connected:
                    log.warning("change feed lost, reconnecting: %s", exc)
                self.connected = False
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()

    async def _newest_seq(self) -> int:
        """The newest change already announced: we start there, and whatever the listener has
        committed but not announced yet reaches us on the feed when it is."""
        try:
            return max(self.last_seq, await self._reader.last_published_seq())
        except ReadModelUnavailable:
            return self.last_seq

    async def _receive(self, raw: bytes) -> None:
        change = decode_change(raw)
        seq = change.seq
        if seq <= self.last_seq:
            return
        if seq > self.last_seq + 1:
            await self._catch_up(seq - 1)
        await self._deliver([(change, raw)])

    async def _catch_up(self, up_to: int) -> None:
        while self.last_seq < up_to:
            try:
                rows = await self._reader.changes_after(self.last_seq, GAP_PAGE)
            except ReadModelUnavailable:
                return
            rows = [row for row in rows if row[0] <= up_to]
            if not rows:
                return
            delivered = []
            for seq, _, payload in rows:
                raw = change_record(seq, payload)
                delivered.append((decode_change(raw), raw))
            await self._deliver(delivered)

    async def _deliver(self, changes: list[tuple[Change, bytes]]) -> None:
        for change, raw in changes:
            if isinstance(change, ItemChange):
                self._floor.raise_to(change.item_id, change.version)
            self.last_seq = max(self.last_seq, change.seq)
            if self.channels is not None:
                # Framed once here; every subscriber sends these bytes as they are.
                self.channels.publish(frame(change.seq, change.kind, raw), CHANNEL)
        if self._cache is not None:
            items, outcomes = entries_from_changes([change for change, _ in changes])
            try:
                await self._cache.put_items(items)
                await self._cache.put_outcomes(outcomes)
            except CacheUnavailable:
                pass  # reads fall back to SQLite; nothing is lost
        self._last_sent = time.monotonic()

    def _keep_alive(self) -> None:
        if self.channels is not None and time.monotonic() - self._last_sent >= PING_SECONDS:
            self.channels.publish(PING, CHANNEL)
            self._last_sent = time.monotonic()
