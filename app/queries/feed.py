"""Follow the change feed and fan each change out to the subscribers that asked for it.

Each query process reads ``inventory.changes`` from its end (no consumer group: every process
needs every change), keeps the freshness floor and the in-process cache current, and
publishes each change to the in-process Litestar channels of the subscriptions it concerns.
Changes missed while the feed was away are read back from the outbox table by sequence. On a
node (app/replica/) the feed has no consumer of its own: the replica hands it each change once
it is applied to the node's file, so nothing is announced that a read could not see yet.

The change records carry fields only a replica needs; every change is stripped of them
(``for_screens``) before a subscriber or a cache sees it.

A subscription (``Subscription``) is the chain (item totals and every outcome, no levels), a
set of locations (their levels only), or one item (all its changed levels). Subscribers with the
same subscription share one channel; the feed keeps an index of the channels in use by
location and by item, so a change at one store is framed and published for the channels of
that store, the item and the chain, never once per store of the chain. Each frame names the
previous change published on its channel: a subscriber whose queue dropped frames
(``dropleft``) sees that the previous one is newer than the last it sent, and refills from the
outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import msgspec
from litestar.channels import ChannelsPlugin

from app.cache.base import CacheUnavailable, ItemCache, entries_from_changes
from app.domain.events import CHANGES_TOPIC
from app.domain.records import Change, ItemChange, OutcomeChange, decode_change, encode_text, for_screens
from app.eventlog.base import EventLog, LogUnavailable
from app.jsontext import change_record
from app.queries.service import FreshnessFloor
from app.reader import InventoryReader, ReadModelUnavailable

log = logging.getLogger(__name__)

CHAIN = "chain"
PING_SECONDS = 15.0
PING = b"0 0 ping\n"
GAP_PAGE = 1000


@dataclass(frozen=True)
class Subscription:
    """What one live stream asked for. ``locations`` None and ``item_id`` None: the chain."""

    locations: frozenset[str] | None = None
    item_id: str | None = None

    @property
    def channel(self) -> str:
        if self.item_id is not None:
            return f"item:{self.item_id}"
        if self.locations is not None:
            return "at:" + ",".join(sorted(self.locations))
        return CHAIN

    def narrow(self, change: Change) -> Change | None:
        """The change as this subscription sees it, or None when it does not concern it.

        A change that carries no location (an edit, a delete, an outcome of either) reaches
        every location subscription: each store shows the item's name and its removal."""
        if self.item_id is not None:
            return change if change.item_id == self.item_id else None
        if isinstance(change, OutcomeChange):
            if self.locations is None or change.location is None or change.location in self.locations:
                return change
            return None
        if self.locations is None:
            # The chain: totals, and the transfers and reservations the change made or closed.
            return msgspec.structs.replace(change, levels=[]) if change.levels else change
        if not change.levels:
            return change
        narrowed = change.with_levels(self.locations)
        # A store sees a change at its levels, and one to a transfer to or from it or a
        # reservation there (a receipt seen from the store that shipped).
        return narrowed if narrowed.levels or narrowed.transfers or narrowed.reservations else None

    def payload(self, change: Change, raw: bytes) -> bytes | None:
        """The JSON this subscription is sent for a change published as ``raw`` (None: nothing)."""
        narrowed = self.narrow(change)
        if narrowed is None:
            return None
        if narrowed is change:
            return raw
        # Same wire format as the feed's own records: the sequence first (app/jsontext.py).
        return change_record(change.seq, encode_text(msgspec.structs.replace(narrowed, seq=0)))


CHAIN_WIDE = Subscription()


def screened(raw: bytes) -> tuple[Change, bytes]:
    """A published change record (sequence first) as screens get it: decoded, without the
    replica-only fields, and its JSON made again only when something was dropped."""
    change = decode_change(raw)
    stripped = for_screens(change)
    if stripped is change:
        return change, raw
    return stripped, change_record(change.seq, encode_text(msgspec.structs.replace(stripped, seq=0)))


def frame(seq: int, prev: int, kind: str, raw: bytes) -> bytes:
    """What travels on a channel: "<seq> <prev> <kind>" on the first line, then the JSON. ``prev``
    is the sequence of the change published on the same channel before this one."""
    return b"%d %d %s\n%s" % (seq, prev, kind.encode(), raw)


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
        self._last_ping = time.monotonic()
        # Channels in use: how many streams hold each, the newest change published on each,
        # and the indexes that find them for a change without looking at the others.
        self._held: dict[str, tuple[Subscription, int]] = {}
        self._prev: dict[str, int] = {}
        self._by_location: dict[str, set[str]] = {}
        self._by_item: dict[str, str] = {}
        self._location_channels: set[str] = set()
        self._chain_held = False
        # Set on a node: the replica hands the changes over (``applied``), no consumer of our own.
        self.follows_replica = False
        # Replaced (and set) each time last_seq moves: what ``wait_for`` waits on.
        self._advanced = asyncio.Event()

    def register(self, subscription: Subscription) -> int:
        """Start serving a subscription; returns the sequence its live part starts after."""
        channel = subscription.channel
        held = self._held.get(channel)
        if held is not None:
            self._held[channel] = (subscription, held[1] + 1)
            return self.last_seq
        self._held[channel] = (subscription, 1)
        self._prev[channel] = self.last_seq
        if subscription.item_id is not None:
            self._by_item[subscription.item_id] = channel
        elif subscription.locations is not None:
            self._location_channels.add(channel)
            for location in subscription.locations:
                self._by_location.setdefault(location, set()).add(channel)
        else:
            self._chain_held = True
        return self.last_seq

    def unregister(self, subscription: Subscription) -> None:
        channel = subscription.channel
        held = self._held.get(channel)
        if held is None:
            return
        if held[1] > 1:
            self._held[channel] = (subscription, held[1] - 1)
            return
        del self._held[channel], self._prev[channel]
        if subscription.item_id is not None:
            self._by_item.pop(subscription.item_id, None)
        elif subscription.locations is not None:
            self._location_channels.discard(channel)
            for location in subscription.locations:
                channels = self._by_location.get(location)
                if channels is not None:
                    channels.discard(channel)
                    if not channels:
                        del self._by_location[location]
        else:
            self._chain_held = False

    def _channels_for(self, change: Change) -> set[str]:
        """The channels in use that a change may concern: the chain, its item, and the
        subscriptions of the locations it carries (of every location when it carries none)."""
        found: set[str] = set()
        if self._chain_held:
            found.add(CHAIN)
        item_channel = self._by_item.get(change.item_id)
        if item_channel is not None:
            found.add(item_channel)
        if not self._location_channels:
            return found
        if isinstance(change, ItemChange):
            locations = [level.location for level in change.levels]
        else:
            locations = [change.location] if change.location is not None else []
        if not locations:
            found |= self._location_channels
        for location in locations:
            found |= self._by_location.get(location, set())
        return found

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """True once every change up to ``seq`` was announced here; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.last_seq < seq:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            advanced = self._advanced
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await advanced.wait()
        return True

    # --- on a node: fed by the replica (app/replica/follower.py AppliedChanges) ----------------

    async def applied(self, changes: list[tuple[Change, bytes]]) -> None:
        """Changes the replica just applied, in order and already stripped for screens."""
        await self._deliver([(change, raw) for change, raw in changes if change.seq > self.last_seq])

    def jumped(self, seq: int, items: list[tuple[str, int]]) -> None:
        """The replica took a snapshot at ``seq``. Every channel's next frame names it as its
        previous one, so each subscriber refills what it missed from the node's outbox (or is
        told to reload when that is no longer kept) rather than skipping it silently. The items
        it changed raise the freshness floor: a cached copy from before is not served."""
        for item_id, version in items:
            self._floor.raise_to(item_id, version)
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        for channel in self._prev:
            self._prev[channel] = seq
        self._wake()

    def _wake(self) -> None:
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    async def run(self) -> None:
        self.last_seq = await self._newest_seq()
        if self.follows_replica:
            self.connected = True
            while True:
                await asyncio.sleep(1.0)
                self._keep_alive()
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
        change, raw = screened(raw)
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
                delivered.append(screened(change_record(seq, payload)))
            await self._deliver(delivered)

    async def _deliver(self, changes: list[tuple[Change, bytes]]) -> None:
        for change, raw in changes:
            if isinstance(change, ItemChange):
                self._floor.raise_to(change.item_id, change.version)
            self.last_seq = max(self.last_seq, change.seq)
            if self.channels is not None:
                self._publish(change, raw)
        if self._cache is not None:
            items, outcomes = entries_from_changes([change for change, _ in changes])
            try:
                await self._cache.put_items(items)
                await self._cache.put_outcomes(outcomes)
            except CacheUnavailable:
                pass  # reads fall back to SQLite; nothing is lost
        if changes:
            self._wake()

    def _publish(self, change: Change, raw: bytes) -> None:
        assert self.channels is not None
        for channel in self._channels_for(change):
            subscription = self._held[channel][0]
            payload = subscription.payload(change, raw)
            if payload is None:
                continue
            # Framed once per channel here; every subscriber of it sends these bytes as they are.
            self.channels.publish(frame(change.seq, self._prev[channel], change.kind, payload), channel)
            self._prev[channel] = change.seq

    def _keep_alive(self) -> None:
        # Every channel, busy or not: a quiet store's wall must not look dead while others sell.
        if self.channels is not None and self._held and time.monotonic() - self._last_ping >= PING_SECONDS:
            self.channels.publish(PING, list(self._held))
            self._last_ping = time.monotonic()
