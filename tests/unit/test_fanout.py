"""The change feed publishes each change to the channels of the subscriptions it concerns, framed
once per channel, narrowed to what each asked for; a subscriber that lost queued frames refills
from the outbox with its own subscription's changes only."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from types import SimpleNamespace
from typing import Any, cast

import msgspec
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend

from app.domain.records import (
    Change,
    ItemChange,
    ItemSummary,
    LevelView,
    OutcomeChange,
    TransferView,
    encode,
    encode_text,
)
from app.eventlog.base import EventLog
from app.http.stream_limits import StreamLimiter
from app.jsontext import change_record
from app.queries.feed import CHAIN, CHAIN_WIDE, ChangeFeed, Subscription, frame
from app.queries.service import FreshnessFloor
from app.queries.stream import ChangeStream, StreamItem
from app.reader import InventoryReader

T = "2026-01-01T00:00:00.000Z"
SUMMARY = ItemSummary("i1", "MUG", "Mug", "", 30, 3, 27, 9, T, T, None)
S001, S002 = frozenset({"S001"}), frozenset({"S002"})


def level(location: str, quantity: int = 10) -> LevelView:
    return LevelView(location, quantity, 1, quantity - 1, 3, T)


def reserve_at(location: str, seq: int) -> ItemChange:
    return ItemChange("i1", 9, False, False, SUMMARY, [level(location)], seq=seq)


def published(change: Change) -> bytes:
    return change_record(change.seq, encode_text(msgspec.structs.replace(change, seq=0)))


class Channels:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, list[str]]] = []

    def publish(self, data: bytes, channels: str | list[str]) -> None:
        self.sent.append((data, [channels] if isinstance(channels, str) else list(channels)))

    def on(self, channel: str) -> list[tuple[int, int, dict[str, Any]]]:
        """(seq, prev, JSON) of each frame published on a channel."""
        frames = []
        for data, channels in self.sent:
            if channel in channels:
                head, _, raw = data.partition(b"\n")
                seq, prev, _ = head.split(b" ", 2)
                frames.append((int(seq), int(prev), json.loads(raw) if raw else {}))
        return frames


def feed_with(*subscriptions: Subscription) -> tuple[ChangeFeed, Channels]:
    channels = Channels()
    feed = ChangeFeed(cast(EventLog, None), cast(InventoryReader, None), FreshnessFloor(), None, cast(Any, channels))
    for subscription in subscriptions:
        feed.register(subscription)
    return feed, channels


async def test_a_change_reaches_the_channels_of_its_locations_its_item_and_the_chain_only() -> None:
    stores = [Subscription(locations=frozenset({f"S{n:03d}"})) for n in range(1, 501)]
    item_page = Subscription(item_id="i1")
    feed, channels = feed_with(CHAIN_WIDE, item_page, *stores, Subscription(locations=S001 | S002))
    change = reserve_at("S002", seq=1)
    await feed._deliver([(change, published(change))])

    # Four frames in a chain of 500 stores: S002's, the S001+S002 subscription's, the item
    # page's and the chain's; the chain's without levels.
    assert sorted(channel for _, sent in channels.sent for channel in sent) == sorted(
        ["at:S002", "at:S001,S002", "item:i1", CHAIN]
    )
    assert channels.on(CHAIN) == [(1, 0, {**json.loads(published(change)), "levels": []})]
    assert channels.on("at:S002")[0][2]["levels"] == [msgspec.to_builtins(level("S002"))]
    assert channels.on("at:S001") == []

    # An edit carries no location: every store shows the item's name. Its outcome too.
    edit = ItemChange("i1", 10, False, False, SUMMARY, [], seq=2)
    outcome = OutcomeChange("c1", "i1", "inventory.items.updated", None, "applied", None, None, 10, T, T, seq=3)
    at_s001 = OutcomeChange("c2", "i1", "inventory.stock.reserved", "S001", "applied", None, None, 11, T, T, seq=4)
    await feed._deliver([(c, published(c)) for c in (edit, outcome, at_s001)])
    assert [seq for seq, _, _ in channels.on("at:S123")] == [2, 3]
    assert [(seq, prev) for seq, prev, _ in channels.on("at:S001")] == [(2, 0), (3, 2), (4, 3)]
    assert [(seq, prev) for seq, prev, _ in channels.on("at:S002")] == [(1, 0), (2, 1), (3, 2)]
    assert [seq for seq, _, _ in channels.on(CHAIN)] == [1, 2, 3, 4]


async def test_a_channel_no_stream_holds_any_more_gets_nothing() -> None:
    wall = Subscription(locations=S001)
    feed, channels = feed_with(wall, wall)
    feed.unregister(wall)
    first = reserve_at("S001", seq=1)
    await feed._deliver([(first, published(first))])
    feed.unregister(wall)
    second = reserve_at("S001", seq=2)
    await feed._deliver([(second, published(second))])
    assert [seq for seq, _, _ in channels.on("at:S001")] == [1]


class Outbox:
    """The outbox as ``InventoryReader`` shows it: (seq, kind, payload) rows."""

    def __init__(self, changes: list[Change]) -> None:
        self.rows = [(c.seq, c.kind, encode(msgspec.structs.replace(c, seq=0)).decode()) for c in changes]

    async def changes_after(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        return [row for row in self.rows if row[0] > after][:limit]

    async def seq_range(self) -> tuple[int, int]:
        return self.rows[0][0], self.rows[-1][0]


async def _frames(items: list[bytes]) -> AsyncGenerator[bytes, None]:
    for item in items:
        yield item


async def test_a_store_subscriber_that_lost_frames_refills_its_own_changes_only() -> None:
    changes: list[Change] = [reserve_at(("S002", "S001")[n % 2], seq=n) for n in range(1, 11)]
    feed = cast(ChangeFeed, SimpleNamespace(last_seq=10))
    channels = ChannelsPlugin(backend=MemoryChannelsBackend(), arbitrary_channels_allowed=True)
    stream = ChangeStream(cast(InventoryReader, Outbox(changes)), feed, channels, StreamLimiter(20))
    wall = Subscription(locations=S001)
    # Its queue dropped the frames of 3, 5 and 7: the frame of 9 says its predecessor was 7.
    kept = [frame(1, 0, "item", published(changes[0])), frame(9, 7, "item", published(changes[8]))]
    got: list[StreamItem] = [item async for item in stream._follow(_frames(kept), 0, None, wall)]
    assert [item.seq for item in got if item.kind == "change"] == [1, 3, 5, 7, 9]
    assert all(
        isinstance(change := item.change(), ItemChange) and [lv.location for lv in change.levels] == ["S001"]
        for item in got
        if item.kind == "change"
    )

    # Resuming with Last-Event-ID replays the subscription's changes after it, nothing else.
    resumed = [item async for item in stream._follow(_frames([]), 10, 4, wall)]
    assert [item.seq for item in resumed if item.kind == "change"] == [5, 7, 9]


def test_a_store_sees_a_transfer_to_or_from_it_and_the_chain_keeps_records_but_no_levels() -> None:
    """A receipt at S002 of units shipped from S001 changes only S002's level; S001's pages still
    hear of it (its transfer closes), S003's do not, and the chain stream keeps the transfer."""
    transfer = TransferView("t1", "i1", "S001", "S002", 6, 5, "received", T, T, None)
    receipt = msgspec.structs.replace(reserve_at("S002", 7), transfers=[transfer])
    seen_from_sender = Subscription(locations=S001).narrow(receipt)
    assert isinstance(seen_from_sender, ItemChange)
    assert seen_from_sender.levels == [] and seen_from_sender.transfers == [transfer]
    assert Subscription(locations=frozenset({"S003"})).narrow(receipt) is None
    seen_by_chain = CHAIN_WIDE.narrow(receipt)
    assert isinstance(seen_by_chain, ItemChange)
    assert seen_by_chain.levels == [] and seen_by_chain.transfers == [transfer]
