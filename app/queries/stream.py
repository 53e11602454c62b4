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

from litestar import get
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.auth.roles import Role
from app.http.auth import requires
from app.metrics import SSE_CLIENTS, SSE_REFILLS
from app.queries.feed import CHANNEL, ChangeFeed
from app.reader import InventoryReader

RETRY_MS = 1000
# Beyond this many missed changes a client is better off reloading than replaying.
MAX_REPLAY = 10_000
REPLAY_PAGE = 1000


def change_event(change: dict[str, Any]) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        data=json.dumps(change, separators=(",", ":")), event=change["kind"], id=str(change["seq"])
    )


@dataclass(frozen=True)
class StreamItem:
    """What a subscriber receives: a change, a reset (reload), a keep-alive, or the greeting sent
    once the subscription is in place."""

    kind: Literal["hello", "change", "reset", "ping"]
    change: dict[str, Any] | None = None
    seq: int = 0


class ChangeStream:
    """One subscriber's view of the feed: replay, then live, without gaps or repeats."""

    def __init__(self, reader: InventoryReader, feed: ChangeFeed, channels: ChannelsPlugin) -> None:
        self._reader = reader
        self._feed = feed
        self._channels = channels

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
                async for raw in subscriber.iter_events():
                    change = json.loads(raw)
                    if change["kind"] == "ping":
                        yield StreamItem("ping")
                        continue
                    seq = int(change["seq"])
                    if seq <= last:
                        continue
                    if seq > last + 1:  # we fell behind and lost queued events: take them from the outbox
                        SSE_REFILLS.inc()
                        async for item in self._replay(last, seq - 1, 0):
                            yield item
                            last = item.seq
                    yield StreamItem("change", change, seq)
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
            elif item.change is not None:
                yield change_event(item.change)

    async def _replay(self, after: int, up_to: int, oldest: int) -> AsyncGenerator[StreamItem, None]:
        if after > up_to or up_to - after > MAX_REPLAY or (oldest and after < oldest - 1):
            # Too far behind, or ahead of us (a database that was reset): start again.
            yield StreamItem("reset", seq=up_to)
            return
        while after < up_to:
            rows = await self._reader.changes_after(after, min(REPLAY_PAGE, up_to - after))
            if not rows:
                yield StreamItem("reset", seq=up_to)
                return
            for seq, payload in rows:
                after = seq
                yield StreamItem("change", {"seq": seq, **json.loads(payload)}, seq)


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
)
async def stream_changes(
    change_stream: NamedDependency[ChangeStream],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
    after: Annotated[
        int | None, Parameter(description="resume after this sequence (for clients without headers)")
    ] = None,
) -> ServerSentEvent:
    resume = after
    if last_event_id is not None and last_event_id.strip().isdigit():
        resume = int(last_event_id.strip())
    return ServerSentEvent(change_stream.events(resume))
