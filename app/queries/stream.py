"""``GET /api/v1/inventory/stream``: server-sent events of changes and command outcomes.

A client subscribes to what it shows (``app/queries/feed.py:Subscription``): ``location=S001,S002``
gets those locations' levels, without it the chain's item totals; both get the outcomes that
concern them. The event id is the listener's commit sequence: ids rise, with gaps where other
locations changed. A client that reconnects with ``Last-Event-ID`` gets every change of its
subscription it missed from the outbox table, or a ``reset`` event when those are no longer
kept (then it should reload). A client too slow to keep up loses its oldest queued events in
memory and gets them back from the outbox the same way, so it never slows down the others.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain import rules
from app.domain.catalogue import FieldError, InvalidCommand
from app.domain.records import Change, decode_change
from app.http.auth import requires
from app.http.errors import ErrorBody
from app.http.stream_end import until_ended
from app.http.stream_limits import StreamLimiter, leased
from app.jsontext import change_record
from app.metrics import SSE_CLIENTS, SSE_REFILLS, track_size
from app.queries.feed import CHAIN_WIDE, ChangeFeed, Subscription, screened
from app.reader import InventoryReader
from app.settings import Settings

RETRY_MS = 1000
# Beyond this many missed changes a client is better off reloading than replaying.
MAX_REPLAY = 10_000
REPLAY_PAGE = 1000


class Encoded(ServerSentEventMessage):
    """A message whose bytes were made once (by the feed) and are sent as they are."""

    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.payload = payload

    def encode(self) -> bytes:
        return self.payload


def sse_bytes(seq: int, kind: str, raw: bytes) -> bytes:
    # Compact JSON holds no line breaks, so it fits on one data line.
    return b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (seq, kind.encode(), raw)


@dataclass(frozen=True)
class StreamItem:
    """What a subscriber receives: a change, a reset (reload), a keep-alive, or the greeting sent
    once the subscription is in place. A change comes as its JSON bytes; change() decodes them."""

    kind: Literal["hello", "change", "reset", "ping"]
    seq: int = 0
    raw: bytes = b""
    change_kind: str = ""

    def change(self) -> Change:
        return decode_change(self.raw)


class ChangeStream:
    """One subscriber's view of the feed: replay, then live, without gaps or repeats."""

    def __init__(
        self, reader: InventoryReader, feed: ChangeFeed, channels: ChannelsPlugin, limiter: StreamLimiter
    ) -> None:
        self._reader = reader
        self._feed = feed
        self._channels = channels
        self.limiter = limiter
        # Each subscriber's queue holds at most INVENTORY_SSE_BACKLOG changes (the oldest are
        # dropped and refilled from the outbox); the channel's own queue is in transit only.
        # One channel per subscription in use (app/queries/feed.py): the largest queue of all.
        track_size(
            "sse_backlog_largest",
            channels._max_backlog,
            lambda: max(
                (subscriber.qsize for subscribers in channels._channels.values() for subscriber in subscribers),
                default=0,
            ),
        )
        track_size("sse_publish_queue", None, lambda: channels._pub_queue.qsize() if channels._pub_queue else 0)

    async def items(
        self, last_event_id: int | None, subscription: Subscription = CHAIN_WIDE
    ) -> AsyncGenerator[StreamItem, None]:
        # Register first, then subscribe, then replay: a change published before the channel
        # is in place shows up as a "previous" newer than ours and is refilled from the outbox;
        # a change both replayed and received is dropped by the sequence check below.
        channel = subscription.channel
        start = self._feed.register(subscription)
        try:
            async with self._channels.start_subscription([channel]) as subscriber:
                self._feed.subscribers += 1
                SSE_CLIENTS.inc()
                try:
                    async for item in self._follow(subscriber.iter_events(), start, last_event_id, subscription):
                        yield item
                finally:
                    self._feed.subscribers -= 1
                    SSE_CLIENTS.dec()
        finally:
            self._feed.unregister(subscription)

    async def _follow(
        self,
        frames: AsyncGenerator[bytes, None],
        start: int,
        last_event_id: int | None,
        subscription: Subscription,
    ) -> AsyncGenerator[StreamItem, None]:
        yield StreamItem("hello")
        # A new client starts at what this process had announced when it subscribed; a
        # returning one gets everything of its subscription after its Last-Event-ID first.
        last = start
        if last_event_id is not None:
            oldest, newest = await self._reader.seq_range()
            up_to = max(newest, self._feed.last_seq)
            async for item in self._replay(subscription, last_event_id, up_to, oldest):
                yield item
            last = up_to
        async for framed in frames:
            head, _, raw = framed.partition(b"\n")
            seq_text, prev_text, kind = head.split(b" ", 2)
            if kind == b"ping":
                yield StreamItem("ping")
                continue
            seq = int(seq_text)
            if seq <= last:
                continue
            if int(prev_text) > last:  # we fell behind and lost queued events: take them from the outbox
                SSE_REFILLS.inc()
                async for item in self._replay(subscription, last, seq - 1, 0):
                    yield item
            yield StreamItem("change", seq, raw, kind.decode())
            last = seq

    async def events(
        self, last_event_id: int | None, subscription: Subscription = CHAIN_WIDE
    ) -> AsyncGenerator[ServerSentEventMessage, None]:
        """The JSON stream of the API."""
        async for item in self.items(last_event_id, subscription):
            if item.kind == "hello":
                yield ServerSentEventMessage(comment="connected", retry=RETRY_MS)
            elif item.kind == "ping":
                yield ServerSentEventMessage(comment="ping")
            elif item.kind == "reset":
                yield _reset(item.seq)
            else:
                yield Encoded(sse_bytes(item.seq, item.change_kind, item.raw))

    async def _replay(
        self, subscription: Subscription, after: int, up_to: int, oldest: int
    ) -> AsyncGenerator[StreamItem, None]:
        """The subscription's changes after ``after`` up to ``up_to``, from the outbox. The outbox
        holds every change of the chain, so a location's replay reads the others' and skips
        them: a cost paid on a reconnection or a refill, not on every change."""
        if after > up_to or up_to - after > MAX_REPLAY or (oldest and after < oldest - 1):
            # Too far behind, or ahead of us (a database that was reset): start again.
            yield StreamItem("reset", seq=up_to)
            return
        while after < up_to:
            rows = await self._reader.changes_after(after, min(REPLAY_PAGE, up_to - after))
            if not rows or rows[0][0] != after + 1:
                # Gone from the outbox (pruned by retention): a gap would be a silent loss.
                yield StreamItem("reset", seq=up_to)
                return
            for seq, kind, payload in rows:
                after = seq
                # Read back from the outbox, the record has the replica-only fields: dropped here.
                narrowed = subscription.payload(*screened(change_record(seq, payload)))
                if narrowed is not None:
                    yield StreamItem("change", seq, narrowed, kind)


def _reset(seq: int) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        data=json.dumps({"reason": "missed changes are no longer available; reload", "seq": seq}),
        event="reset",
        id=str(seq),
    )


LOCATION_HELP = (
    "Comma-separated location codes: only changes of their levels (and outcomes at them, and "
    "item edits and deletes). Without it: every item's chain totals (no levels) and every outcome."
)


def parse_locations(raw: str | None, known: tuple[str, ...]) -> frozenset[str] | None:
    """``S001,S002`` as a set of known codes; None when absent (the chain). Unknown codes are a 400."""
    if raw is None or not raw.strip():
        return None
    codes = {rules.normalise_location(part) for part in raw.split(",")} - {""}
    unknown = sorted(codes - set(known))
    if unknown or not codes:
        raise InvalidCommand([FieldError("location", f"unknown location; known: {', '.join(known)}")])
    return frozenset(codes)


@get(
    "/api/v1/inventory/stream",
    guards=[requires(Role.VIEWER)],
    tags=["queries"],
    summary="Live changes and command outcomes (server-sent events)",
    description=(
        "Events: item, outcome, reset, and a last `ended` (data: expired, signed-out or revoked) when the "
        "token no longer holds; comments as keep-alives. Resume with Last-Event-ID (or `after`): "
        "the missed changes of the same subscription are replayed. With `location`, an item event carries "
        "only the levels at those locations (`levels`) and the item's chain totals (`item`); changes at "
        "other locations are not sent. Without it, item events carry the totals and no levels. An item "
        "event has `alerts` when the change raised stock alerts (low_stock, out_of_stock, back_in_stock; "
        "with `location`, those at its locations), and `edited: true` when it changed the item's name, "
        "description or threshold; both are left out otherwise."
    ),
    responses={
        400: ResponseSpec(ErrorBody, description="An unknown location code"),
        429: ResponseSpec(ErrorBody, description="Too many live streams open for this user (see Retry-After)"),
    },
)
async def stream_changes(
    request: Request[Principal, Any, Any],
    change_stream: NamedDependency[ChangeStream],
    settings: NamedDependency[Settings],
    revocations: NamedDependency[Revocations],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    after: Annotated[
        int | None, Parameter(description="resume after this sequence (for clients without headers)")
    ] = None,
    location: Annotated[str | None, Parameter(description=LOCATION_HELP, max_length=4000)] = None,
) -> ServerSentEvent:
    subscription = Subscription(locations=parse_locations(location, settings.locations))
    resume = after
    if last_event_id is not None and last_event_id.strip().isdigit():
        resume = int(last_event_id.strip())
    lease = change_stream.limiter.open(request.user)  # 429 beyond the cap, before anything is sent
    principal = request.user  # the stream ends, with `ended`, when its token no longer holds
    events = until_ended(change_stream.events(resume, subscription), lambda: revocations.ended(principal))
    return ServerSentEvent(leased(lease, events))
