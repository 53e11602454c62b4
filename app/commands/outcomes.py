"""Knowing how a command ended: waiting for it (``Prefer: wait``) and the status resource.

Outcomes arrive on the change feed right after the listener refreshed the cache; a slow poll
of the database covers a feed that is late or away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict

import msgspec

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.cache.base import CacheUnavailable, ItemCache, entry_for
from app.commands.store import CommandLookup
from app.domain.events import CHANGES_TOPIC
from app.domain.records import (
    CommandStatusView,
    ItemChange,
    ItemView,
    OutcomeChange,
    OutcomeView,
    decode_change,
    for_screens,
)
from app.domain.views import item_view, with_levels
from app.eventlog.base import EventLog, LogUnavailable
from app.metrics import track_size
from app.reader import InventoryReader, ReadModelUnavailable

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
LATEST_ITEMS = 10_000
# Requests waiting with ``Prefer: wait`` (each at most 30 s); beyond it a request is answered
# 202 at once instead of waiting.
MAX_WAITING = 10_000
# What a waiting client gets (app/commands/service.py imports this name).
Outcome = OutcomeView

# Everything up to it is in the read model: the newest change record it holds (the listener's
# outbox, a node's replica watermark), or the newest one the listener announced.
READ_MODEL_SEQ = (
    "SELECT MAX(COALESCE((SELECT MAX(seq) FROM changes), 0), COALESCE((SELECT MAX(CAST(value AS INTEGER)) "
    "FROM meta WHERE key IN ('published_seq', 'replica_seq')), 0))"
)


async def read_model_seq(reader: InventoryReader) -> int:
    """A sequence the read model has reached, read *after* an outcome was read from it: at least
    the seq of that outcome's change record (which commits with the outcome), and one every query
    node reaches (a node's replica follows the same records). Dearer to find exactly: the outcome's
    own row in ``changes`` is not indexed by command, and may be pruned."""
    rows = await reader.rows(READ_MODEL_SEQ)
    return int(rows[0][0]) if rows else 0


class OutcomeWaiter:
    def __init__(self, event_log: EventLog, reader: InventoryReader) -> None:
        self._log = event_log
        self._reader = reader
        self._waiting: dict[str, asyncio.Future[OutcomeView]] = {}
        # The item's state from the change record that precedes its outcomes in the feed: what
        # a waiting client gets back. Several commands applied in one batch share the state
        # after the last of them.
        self._latest_items: OrderedDict[str, ItemView | None] = OrderedDict()
        track_size("outcome_waiters", MAX_WAITING, lambda: len(self._waiting))
        track_size("outcome_latest_items", LATEST_ITEMS, lambda: len(self._latest_items))

    def expect(self, command_id: str) -> asyncio.Future[OutcomeView]:
        """Register before publishing, so an outcome that comes back very fast is not missed."""
        future = self._waiting.get(command_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            if len(self._waiting) < MAX_WAITING:
                self._waiting[command_id] = future
            else:
                future.cancel()  # full: this request does not wait
        return future

    def forget(self, command_id: str) -> None:
        self._waiting.pop(command_id, None)

    async def wait(self, command_id: str, timeout: float) -> OutcomeView | None:
        future = self.expect(command_id)
        if future.cancelled():  # too many waiting already: answer at once
            return None
        try:
            async with asyncio.timeout(timeout):
                found = await asyncio.shield(future)
        except TimeoutError:
            return None
        finally:
            self.forget(command_id)
        outcome = found.outcome
        if outcome.status == "applied" and found.item is None and not outcome.event_type.endswith("deleted"):
            with contextlib.suppress(ReadModelUnavailable):
                found = OutcomeView(outcome, await self._item_now(outcome.item_id))
        if outcome.seq == 0:
            # Read from the database (the feed's records carry their seq): a bound read after it.
            with contextlib.suppress(ReadModelUnavailable):
                found = OutcomeView(
                    msgspec.structs.replace(outcome, seq=await read_model_seq(self._reader)), found.item
                )
        return found

    async def _item_now(self, item_id: str) -> ItemView | None:
        item = await self._reader.item(item_id)
        return item_view(item) if item is not None and not item.deleted else None

    def _remember(self, item_id: str, item: ItemView | None) -> None:
        self._latest_items[item_id] = item
        self._latest_items.move_to_end(item_id)
        if len(self._latest_items) > LATEST_ITEMS:
            self._latest_items.popitem(last=False)

    def _resolve(self, outcome: OutcomeView) -> None:
        future = self._waiting.get(outcome.outcome.command_id)
        if future is not None and not future.done():
            future.set_result(outcome)

    async def run(self) -> None:
        await asyncio.gather(self._follow_feed(), self._poll_database())

    async def _follow_feed(self) -> None:
        while True:
            consumer = self._log.consumer([CHANGES_TOPIC], group_id=None, start_at="latest")
            try:
                await consumer.start()
                while True:
                    for record in await consumer.fetch(1000, timeout=1.0):
                        if record.value is None or not self._waiting:
                            continue  # nobody waits: no need to read it
                        # The record carries what only replicas need: dropped before anyone sees it.
                        change = for_screens(decode_change(record.value))
                        if isinstance(change, OutcomeChange):
                            self._resolve(OutcomeView(change, self._latest_items.get(change.item_id)))
                        elif isinstance(change, ItemChange):
                            item = None if change.item is None else with_levels(change.item, change.levels)
                            self._remember(change.item_id, item)
            except LogUnavailable as exc:
                log.info("change feed unavailable for waiters, polling the database: %s", exc)
                await asyncio.sleep(1.0)
            finally:
                await consumer.stop()

    async def _poll_database(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for command_id in list(self._waiting):
                with contextlib.suppress(ReadModelUnavailable):
                    outcome = await self._reader.outcome(command_id)
                    if outcome is not None:
                        item = await self._item_now(outcome.item_id) if outcome.status == "applied" else None
                        self._resolve(OutcomeView(outcome, item))


class CommandStatus:
    """``GET /api/v1/commands/{id}``, the same on the command and the query roles."""

    def __init__(
        self, reader: InventoryReader, cache: ItemCache, lookup: CommandLookup, *, tells_seq: bool = False
    ) -> None:
        self._reader = reader
        self._cache = cache
        self._lookup = lookup
        # Whether ``get_with_seq`` finds the sequence of a known outcome: on the command role only
        # (the query role's answers get X-Inventory-Seq from app/queries/freshness.py).
        self.tells_seq = tells_seq

    async def get(self, command_id: str, reader: Principal | None = None) -> CommandStatusView | None:
        """The command's status, or None when it is unknown or not ``reader``'s to see: its author,
        managers and admins may (anyone else gets the same None as for an unknown id, so ids do
        not leak)."""
        found, _ = await self._find(command_id, reader, with_seq=False)
        return found

    async def get_with_seq(
        self, command_id: str, reader: Principal | None = None
    ) -> tuple[CommandStatusView | None, int | None]:
        """``get``, and for a known outcome (when ``tells_seq``) a change sequence that holds it:
        a query node at that sequence or newer shows the command's effect."""
        return await self._find(command_id, reader, with_seq=self.tells_seq)

    async def _find(
        self, command_id: str, reader: Principal | None, *, with_seq: bool
    ) -> tuple[CommandStatusView | None, int | None]:
        if reader is not None and not reader.can(Role.MANAGER):
            accepted = await self._lookup.get(command_id)
            # Another node accepted it (docs/scaling.md): once decided, its author is in the
            # outcome this node replicated.
            author = accepted.actor if accepted is not None else await self._decided_by(command_id)
            if author != reader.username:
                return None, None
        seq: int | None = None
        outcome = await self._cached_outcome(command_id)
        if outcome is not None and with_seq:
            # The cache may be ahead of this node's read model: the sequence only from the latter.
            with contextlib.suppress(ReadModelUnavailable):
                if await self._reader.outcome(command_id) is not None:
                    seq = await read_model_seq(self._reader)
        if outcome is None:
            with contextlib.suppress(ReadModelUnavailable):
                outcome = await self._reader.outcome(command_id)
                if outcome is not None and with_seq:
                    seq = await read_model_seq(self._reader)
                if outcome is not None and outcome.status == "applied":
                    await self._catch_cache_up(outcome.item_id)
        if outcome is not None:
            return CommandStatusView(
                command_id=outcome.command_id,
                status=outcome.status,
                item_id=outcome.item_id,
                submitted_at=outcome.submitted_at,
                reason=outcome.reason,
                version=outcome.version,
                processed_at=outcome.processed_at,
            ), seq or None
        accepted = await self._lookup.get(command_id)
        if accepted is None or accepted.state == "failed":
            return None, None
        return CommandStatusView(
            command_id=accepted.command_id,
            status="pending",
            item_id=accepted.item_id,
            submitted_at=accepted.submitted_at,
        ), None

    async def _decided_by(self, command_id: str) -> str | None:
        with contextlib.suppress(ReadModelUnavailable):
            return await self._reader.outcome_actor(command_id)
        return None

    async def _cached_outcome(self, command_id: str) -> OutcomeChange | None:
        try:
            return await self._cache.get_outcome(command_id)
        except CacheUnavailable:
            return None

    async def _catch_cache_up(self, item_id: str) -> None:
        """The outcome was committed but the cache may not have it yet: put it there first, so that
        anyone told 'applied' reads at least that version (the write is version-guarded)."""
        item = await self._reader.item(item_id)
        if item is None:
            return
        with contextlib.suppress(CacheUnavailable):
            await self._cache.put_items([entry_for(item)])
