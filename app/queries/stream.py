"""``GET /api/v1/inventory/stream``: server-sent events of changes and command outcomes.

The event id is the listener's commit sequence. A client that reconnects with
``Last-Event-ID`` gets every change it missed from the outbox table, or a ``reset`` event when
those are no longer kept (then it should reload). A client too slow to keep up loses its
oldest queued events in memory and gets them back from the outbox the same way, so it never
slows down the others.
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

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.commands.schemas import ErrorBody
from app.http.auth import requires
from app.http.stream_limits import StreamLimiter, leased
from app.jsontext import change_record, json_object
from app.metrics import SSE_CLIENTS, SSE_REFILLS, track_size
from app.queries.feed import CHANNEL, ChangeFeed
from app.reader import InventoryReader

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

    def change(self) -> dict[str, Any]:
        return json_object(self.raw)


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
        subscribers = channels._channels.get(CHANNEL, set())
        track_size(
            "sse_backlog_largest",
            channels._max_backlog,
            lambda: max((subscriber.qsize for subscriber in subscribers), default=0),
        )
        track_size("sse_publish_queue", None, lambda: channels._pub_queue.qsize() if channels._pub_queue else 0)

    async def items(self, last_event_id: int | None) -> AsyncGenerator[StreamItem, None]:
        # Subscribe first, then replay: a change committed in between is in both, and the
        # sequence check below drops the second copy.
        async with self._channels.start_subscription([CHANNEL]) as subscriber:
            self._feed.subscribers += 1
            SSE_CLIENTS.inc()
            try:
                yield StreamItem("hello")
                # A new client starts at what this process has announced; a returning one gets
                # everything after its Last-Event-ID from the outbox first.
                last = self._feed.last_seq
                if last_event_id is not None:
                    oldest, newest = await self._reader.seq_range()
                    last = last_event_id
                    async for item in self._replay(last, max(newest, self._feed.last_seq), oldest):
                        yield item
                        last = item.seq
                async for framed in subscriber.iter_events():
                    head, _, raw = framed.partition(b"\n")
                    seq_text, _, kind = head.partition(b" ")
                    if kind == b"ping":
                        yield StreamItem("ping")
                        continue
                    seq = int(seq_text)
                    if seq <= last:
                        continue
                    if seq > last + 1:  # we fell behind and lost queued events: take them from the outbox
                        SSE_REFILLS.inc()
                        async for item in self._replay(last, seq - 1, 0):
                            yield item
                            last = item.seq
                    yield StreamItem("change", seq, raw, kind.decode())
                    last = seq
            finally:
                self._feed.subscribers -= 1
                SSE_CLIENTS.dec()

    async def events(self, last_event_id: int | None) -> AsyncGenerator[ServerSentEventMessage, None]:
        """The JSON stream of the API."""
        async for item in self.items(last_event_id):
            if item.kind == "hello":
                yield ServerSentEventMessage(comment="connected", retry=RETRY_MS)
            elif item.kind == "ping":
                yield ServerSentEventMessage(comment="ping")
            elif item.kind == "reset":
                yield _reset(item.seq)
            else:
                yield Encoded(sse_bytes(item.seq, item.change_kind, item.raw))

    async def _replay(self, after: int, up_to: int, oldest: int) -> AsyncGenerator[StreamItem, None]:
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
                yield StreamItem("change", seq, change_record(seq, payload), kind)


def _reset(seq: int) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        data=json.dumps({"reason": "missed changes are no longer available; reload", "seq": seq}),
        event="reset",
        id=str(seq),
    )


@get(
    "/api/v1/inventory/stream",
    guards=[requires(Role.VIEWER)],
    tags=["queries"],
    summary="Live changes and command outcomes (server-sent events)",
    description="Events: item, outcome, reset; comments as keep-alives. Resume with Last-Event-ID.",
    responses={429: ResponseSpec(ErrorBody, description="Too many live streams open for this user (see Retry-After)")},
)
async def stream_changes(
    request: Request[Principal, Any, Any],
    change_stream: NamedDependency[ChangeStream],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    after: Annotated[
        int | None, Parameter(description="resume after this sequence (for clients without headers)")
    ] = None,
) -> ServerSentEvent:
    resume = after
    if last_event_id is not None and last_event_id.strip().isdigit():
        resume = int(last_event_id.strip())
    lease = change_stream.limiter.open(request.user)  # 429 beyond the cap, before anything is sent
    return ServerSentEvent(leased(lease, change_stream.events(resume)))
