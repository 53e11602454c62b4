"""Accept a checked command: publish it durably, answer 202, and keep the answer for retries.

The order of writes is what makes the promise "never lost, never applied twice" hold:

* without an Idempotency-Key: publish (wait for the log's ack), then record the command,
  then answer. A crash before the answer leaves at most an event the client never heard of.
* with a key: record first (the key is the lock), publish, then store the answer. A retry
  finds the record and either returns the stored answer or publishes the *same* event again,
  which the listener drops as a duplicate by its event id.

A keyed command's ids are not random: its command id and event id (and a created item's id,
app/commands/controllers.py) derive from the actor, the key and the request's hash
(``keyed_ids``). A retry that reaches another command node, or comes after the record of its
key is gone, publishes the very same event, which the listener applies once. The keys
themselves live in this process's commands.db, or in Redis when it is configured
(app/commands/redis_store.py), so that every command node sees the same record for a key.

It speaks the domain: ``submit`` returns a typed result or raises a refusal from
app/commands/errors.py (or LogUnavailable, or InvalidCommand); the HTTP edge
(app/commands/edge.py) turns those into answers and hands the exact bytes back with
``keep_reply`` so a retry gets the very same answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import sqlite3
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import msgspec

from app.clock import utc_now
from app.commands.errors import IdempotencyKeyReused, KeysUnavailable, Overloaded, SkuTaken, UnknownItem
from app.commands.outcomes import Outcome, OutcomeWaiter
from app.commands.store import AcceptedCommand, CommandKeys, CommandLookup, CommandStore, IdempotencyKeyTaken
from app.domain.catalogue import BY_EVENT_TYPE, CommandRequest, Places, decode_event
from app.domain.events import Event, EventType, encode_event
from app.domain.records import ItemView
from app.domain.scope import RecordPlaces
from app.eventlog.base import EventLog, LogUnavailable, Message
from app.logs import command_id_var
from app.metrics import COMMANDS_ACCEPTED, COMMANDS_REFUSED, track_size
from app.reader import InventoryReader, ReadModelUnavailable
from app.settings import IDEMPOTENCY_KEY_SECONDS

log = logging.getLogger(__name__)

REQUEST_ID_REPLAY_SECONDS = 5 * 60
MAX_WAIT_SECONDS = 30.0
LIVE_CACHE_SECONDS = 5.0
LIVE_CACHE_SIZE = 100_000
# Commands with an Idempotency-Key being published by this process; beyond it a refusal.
MAX_IN_FLIGHT = 10_000
# Keyed commands submitted with the keys in Redis and not answered yet (``keep_reply``; an
# import never answers): the oldest are forgotten.
MAX_UNANSWERED = 10_000
_ITEM_STATE = "SELECT deleted_at FROM items WHERE id = ?"
_KEYED_IDS = uuid.UUID("0b6a4f6e-5c2d-4f3e-9a71-3d2e8c1b7f45")


@dataclass(frozen=True)
class Submission:
    command: CommandRequest
    actor: str
    request_id: str
    request_hash: str
    wait_seconds: float = 0.0
    idempotency_key: str | None = None
    key_lifetime: float = IDEMPOTENCY_KEY_SECONDS
    # Fast rejections (unknown item, SKU taken) for a new command; a retry of an answered one
    # skips them.
    precheck: bool = True
    # Ids derived from the actor, the key and the request (``keyed_ids``) rather than random: for
    # a client's Idempotency-Key, whose retry may reach another command node. Not for the
    # five-minute X-Request-ID replays nor the imports' row keys, whose later reuse with the same
    # request must stay a new command (the listener drops a known event id for days).
    derived_ids: bool = False


# --- what submitting a command ends in ----------------------------------------------------


# The transfer or reservation a command makes or names: ("reservation_id", its id).
RecordName = tuple[str, str] | None


@dataclass(frozen=True)
class Accepted:
    """Durably in the log; its outcome is not known yet (follow ``status_url``)."""

    command_id: str
    item_id: str
    record: RecordName = None

    @property
    def status_url(self) -> str:
        return status_url(self.command_id)


@dataclass(frozen=True)
class CommandApplied:
    """Applied while the client waited: the item as it is now (None after a delete)."""

    command_id: str
    item_id: str
    event_type: str
    item: ItemView | None
    version: int | None
    processed_at: str | None
    record: RecordName = None
    # The change sequence that holds the outcome (a lower bound of it): ``X-Inventory-Seq``.
    seq: int | None = None


@dataclass(frozen=True)
class CommandRejected:
    """Rejected by the listener while the client waited."""

    command_id: str
    item_id: str
    reason: str
    message: str
    record: RecordName = None
    seq: int | None = None


@dataclass(frozen=True)
class AnsweredBefore:
    """A retry of an answered command: the answer the edge kept, byte for byte."""

    status: int
    headers: dict[str, str]
    body: bytes


CommandResult = Accepted | CommandApplied | CommandRejected | AnsweredBefore


def request_fingerprint(method: str, path: str, body: bytes, if_match: str | None) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), (if_match or "").encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def status_url(command_id: str) -> str:
    return f"/api/v1/commands/{command_id}"


@dataclass(frozen=True)
class KeyedIds:
    command_id: str
    event_id: str
    # The id a create gets (app/commands/controllers.py): the same item on every retry.
    item_id: str


# Random bytes for new ids, fetched from the OS a page at a time. ``os.urandom`` lets go of the
# GIL, and taking it back while the store's threads run made each ``uuid4()`` cost more than the
# rest of building the command.
_RANDOM_PAGE = 4096
_random = b""
_random_at = 0


def new_uuid() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())``, from the same source."""
    global _random, _random_at
    if _random_at >= len(_random):
        _random, _random_at = os.urandom(_RANDOM_PAGE), 0
    raw = _random[_random_at : _random_at + 16]
    _random_at += 16
    return str(uuid.UUID(bytes=raw, version=4))


def _forget_random() -> None:
    global _random, _random_at
    _random, _random_at = b"", 0


# A forked child must not hand out the ids its parent had left.
os.register_at_fork(after_in_child=_forget_random)


def keyed_ids(actor: str, key: str, request_hash: str) -> KeyedIds:
    """The ids of a command sent with a key: the same actor, key and request always get the same
    ones, on any command node and after the key's record is gone (the listener drops the second
    copy of an event id). Another request under the same key gets other ids."""
    seed = f"{len(actor)}:{actor}:{len(key)}:{key}:{request_hash}"
    return KeyedIds(
        command_id=str(uuid.uuid5(_KEYED_IDS, f"command:{seed}")),
        event_id=str(uuid.uuid5(_KEYED_IDS, f"event:{seed}")),
        item_id=str(uuid.uuid5(_KEYED_IDS, f"item:{seed}")),
    )


class CommandService:
    def __init__(
        self,
        event_log: EventLog,
        store: CommandStore,
        lookup: CommandLookup,
        reader: InventoryReader,
        waiter: OutcomeWaiter,
        *,
        locations: tuple[str, ...],
        default_location: str,
        keys: CommandKeys | None = None,
    ) -> None:
        self.locations = locations
        self.default_location = default_location
        self.places = Places(locations, default_location)
        self._log = event_log
        self._store = store
        # The Idempotency-Keys: commands.db itself, or a store every command node shares.
        self._keys: CommandKeys = store if keys is None else keys
        self._keys_shared = keys is not None
        self._unanswered: OrderedDict[str, AcceptedCommand] = OrderedDict()
        self._lookup = lookup
        self._reader = reader
        self._waiter = waiter
        self._in_flight: dict[str, asyncio.Future[CommandResult]] = {}
        # Items seen alive a moment ago: the fast 404 is only a courtesy (the listener decides),
        # so a few seconds of staleness are harmless and save a read on every stock command.
        self._recently_live: dict[str, float] = {}
        track_size("recently_live_items", LIVE_CACHE_SIZE, lambda: len(self._recently_live))
        track_size("commands_in_flight", MAX_IN_FLIGHT, lambda: len(self._in_flight))
        track_size("commands_unanswered", MAX_UNANSWERED, lambda: len(self._unanswered))

    # --- fast rejections, no round trip through the log ---------------------------------

    async def ensure_item_exists(self, item_id: str, event_type: EventType) -> None:
        """UnknownItem for an item that does not exist, but never for one whose create is still pending."""
        if self._recently_live.get(item_id, 0.0) > time.monotonic():
            return
        state = await self._item_state(item_id)
        if state == "live":
            if len(self._recently_live) >= LIVE_CACHE_SIZE:
                self._recently_live.clear()
            self._recently_live[item_id] = time.monotonic() + LIVE_CACHE_SECONDS
            return
        if state is None and await self._pending_create(item_id=item_id):
            return
        COMMANDS_REFUSED.labels(event_type.value, UnknownItem.reason).inc()
        raise UnknownItem(item_id)

    async def _item_state(self, item_id: str) -> str | None:
        """``InventoryReader.item_state`` (None when it cannot be read) in one trip to the reader's
        thread rather than three (execute, fetch, close): each trip waits for the event loop and
        the GIL, and under load they were a tenth of the command service's time."""
        try:
            conn = await self._reader.connection()
            rows = list(await conn.execute_fetchall(_ITEM_STATE, (item_id,)))
        except (ReadModelUnavailable, sqlite3.OperationalError):
            return None
        if not rows:
            return None
        return "deleted" if rows[0][0] is not None else "live"

    async def ensure_sku_free(self, sku: str) -> None:
        try:
            taken = await self._reader.sku_taken(sku)
        except ReadModelUnavailable:
            taken = False
        if taken or await self._pending_create(sku=sku):
            COMMANDS_REFUSED.labels(EventType.ITEM_CREATED.value, SkuTaken.reason).inc()
            raise SkuTaken(sku)

    async def _precheck(self, command: CommandRequest) -> None:
        sku = _created_sku(command)
        if sku is not None:
            await self.ensure_sku_free(sku)
        else:
            await self.ensure_item_exists(command.item_id, command.event_type)

    async def record_places(self, kind: str, record_id: str) -> RecordPlaces | None:
        """Where a transfer (from, to) or a reservation (its location) is, as the read model knows
        it; None when it does not (yet), or cannot be read."""
        sql = (
            "SELECT from_location, to_location FROM transfers WHERE id = ?"
            if kind == "transfer"
            else "SELECT location, location FROM reservations WHERE id = ?"
        )
        try:
            rows = await self._reader.rows(sql, (record_id,))
        except ReadModelUnavailable:
            return None
        return RecordPlaces(str(rows[0][0]), str(rows[0][1])) if rows else None

    async def _pending_create(self, *, item_id: str | None = None, sku: str | None = None) -> bool:
        for accepted in await self._lookup.pending_creates(item_id=item_id, sku=sku):
            try:
                outcome = await self._reader.outcome(accepted.command_id)
            except ReadModelUnavailable:
                outcome = None
            if outcome is None:
                return True
        return False

    # --- accepting ------------------------------------------------------------------------

    async def submit(self, submission: Submission) -> CommandResult:
        key = submission.idempotency_key
        if key is not None:
            return await self._submit_with_key(submission, key)
        if submission.precheck:
            await self._precheck(submission.command)
        accepted = self._new_command(submission)
        await self._publish(accepted, submission)
        COMMANDS_ACCEPTED.labels(accepted.event_type).inc()
        try:
            await self._store.record(accepted)
        except Exception:
            # The event is durably in the log and will be applied: the client must hear so.
            log.exception("accepted command %s could not be recorded", accepted.command_id)
        return await self._result(accepted, submission)

    async def keep_reply(self, command_id: str, status: int, headers: dict[str, str], body: bytes) -> None:
        """The edge's answer to a command sent with a key: what every retry gets back."""
        if not self._keys_shared:
            await self._store.save_response(command_id, status, headers, body)
            return
        command = self._unanswered.pop(command_id, None)
        if command is None:
            return
        try:
            await self._keys.keep_reply(command, status, headers, body)
        except KeysUnavailable as exc:
            # Published and answered: a retry finds the key without its answer and publishes the
            # same event again, which the listener drops.
            log.warning("answer to command %s not kept: %s", command_id, exc.detail)

    async def _submit_with_key(self, submission: Submission, key: str) -> CommandResult:
        while True:
            existing = await self._keys.find(submission.actor, key)
            if existing is not None:
                record, result = existing, await self._replay(existing, submission)
                if isinstance(result, AnsweredBefore) and self._keys_shared:
                    await self._remember(existing)  # its author may ask this node for its status
                break
            if submission.precheck:
                await self._precheck_keyed(submission, key)
            record = self._new_command(submission, key=key, state="publishing")
            try:
                await self._keys.claim(record)
            except IdempotencyKeyTaken:
                continue  # a concurrent request with this key won; answer as its retry
            result = await self._complete(record, submission)
            break
        if self._keys_shared and not isinstance(result, AnsweredBefore):
            # Where keep_reply finds the key (commands.db finds it by command id). No await from
            # here to the edge's keep_reply: the entry is there when it comes.
            self._unanswered[result.command_id] = record
            if len(self._unanswered) > MAX_UNANSWERED:
                self._unanswered.popitem(last=False)
        return result

    async def _complete(self, accepted: AcceptedCommand, submission: Submission) -> CommandResult:
        """Publish a recorded command, once per process at a time."""
        running = self._in_flight.get(accepted.command_id)
        if running is not None:
            return await asyncio.shield(running)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            raise Overloaded("too many commands in progress; retry with the same Idempotency-Key")
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._in_flight[accepted.command_id] = future
        try:
            await self._publish(accepted, submission)
            COMMANDS_ACCEPTED.labels(accepted.event_type).inc()
            if self._keys_shared:
                await self._remember(accepted)
            result = await self._result(accepted, submission)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: nobody else may be waiting
            raise
        finally:
            del self._in_flight[accepted.command_id]

    async def _precheck_keyed(self, submission: Submission, key: str) -> None:
        """The fast rejections, except for a retry of a command this key already made here or on
        another node (its record not seen here, or lost): its derived id has an outcome, and the
        same event goes out again (the listener drops it)."""
        try:
            await self._precheck(submission.command)
        except (UnknownItem, SkuTaken):
            if not submission.derived_ids:
                raise
            command_id = keyed_ids(submission.actor, key, submission.request_hash).command_id
            try:
                decided = await self._reader.outcome(command_id) is not None
            except ReadModelUnavailable:
                decided = False
            if not decided:
                raise

    async def _remember(self, accepted: AcceptedCommand) -> None:
        """With the keys elsewhere, this node still keeps a status record (pending, its author)
        of what it published, as it does for a command without a key."""
        try:
            await self._store.remember(dataclasses.replace(accepted, state="published"))
        except Exception:
            log.exception("accepted command %s could not be recorded", accepted.command_id)

    async def _replay(self, existing: AcceptedCommand, submission: Submission) -> CommandResult:
        if existing.request_hash != submission.request_hash:
            raise IdempotencyKeyReused(existing.command_id)
        if existing.response_status is not None and existing.response_body is not None:
            return AnsweredBefore(existing.response_status, existing.response_headers or {}, existing.response_body)
        # Recorded but never answered (a crash, or the log was down): publish the same event
        # again. If the first attempt did reach the log, the listener drops this copy.
        return await self._complete(existing, submission)

    def _new_command(
        self, submission: Submission, *, key: str | None = None, state: str = "published"
    ) -> AcceptedCommand:
        command = submission.command
        if command.event_type is EventType.ITEM_DELETED:
            self._recently_live.pop(command.item_id, None)
        if key is not None and submission.derived_ids:
            ids = keyed_ids(submission.actor, key, submission.request_hash)
            event_id, command_id = ids.event_id, ids.command_id
        else:
            event_id, command_id = new_uuid(), new_uuid()
        event = Event(
            event_id=event_id,
            event_type=command.event_type,
            item_id=command.item_id,
            location=command.location,
            command_id=command_id,
            request_id=submission.request_id,
            actor=submission.actor,
            occurred_at=utc_now(),
            data=command.data,
            expected_version=command.expected_version,
        )
        command_id_var.set(event.command_id)
        log.debug("accepted %s for item %s", event.event_type.value, event.item_id)
        return AcceptedCommand(
            command_id=event.command_id,
            item_id=event.item_id,
            event_type=event.event_type.value,
            sku=_created_sku(command),
            actor=submission.actor,
            request_id=submission.request_id,
            submitted_at=event.occurred_at,
            state=state,
            topic=event.topic,
            event=encode_event(event),
            idem_scope=submission.actor if key is not None else None,
            idem_key=key,
            request_hash=submission.request_hash if key is not None else None,
            idem_expires=time.time() + submission.key_lifetime if key is not None else None,
        )

    async def _publish(self, accepted: AcceptedCommand, submission: Submission) -> None:
        if submission.wait_seconds > 0:
            self._waiter.expect(accepted.command_id)
        headers = (("event-type", accepted.event_type.encode()), ("event-id", _event_id(accepted).encode()))
        try:
            await self._log.publish([Message(accepted.topic, accepted.item_id.encode(), accepted.event, headers)])
        except LogUnavailable:
            self._waiter.forget(accepted.command_id)
            COMMANDS_REFUSED.labels(accepted.event_type, "unavailable").inc()
            log.warning("event log unavailable: refused command %s", accepted.command_id)
            if accepted.idem_key is not None and not self._keys_shared:
                await self._store.set_state(accepted.command_id, "failed")
            raise

    async def _result(self, accepted: AcceptedCommand, submission: Submission) -> CommandResult:
        if submission.wait_seconds > 0:
            outcome = await self._waiter.wait(accepted.command_id, min(submission.wait_seconds, MAX_WAIT_SECONDS))
            if outcome is not None:
                return _decided(outcome, record_named(accepted.event))
        return Accepted(accepted.command_id, accepted.item_id, record_named(accepted.event))


class _EventId(msgspec.Struct):
    event_id: str


_read_event_id = msgspec.json.Decoder(_EventId).decode


def _event_id(accepted: AcceptedCommand) -> str:
    return _read_event_id(accepted.event).event_id


def _created_sku(command: CommandRequest) -> str | None:
    if not BY_EVENT_TYPE[command.event_type].creates_item:
        return None
    sku = getattr(command.data, "sku", None)
    return sku if isinstance(sku, str) else None


class _EventType(msgspec.Struct):
    event_type: str


_read_event_type = msgspec.json.Decoder(_EventType).decode
_WITH_RECORDS = {spec.event_type.value: spec for spec in BY_EVENT_TYPE.values() if spec.record is not None}


def record_named(event: bytes) -> RecordName:
    """The transfer or reservation the command makes or names, as the 202 tells the client."""
    spec = _WITH_RECORDS.get(_read_event_type(event).event_type)
    if spec is None or spec.record is None:
        return None
    return (spec.record.key, spec.record.id_of(decode_event(event)))


def _decided(view: Outcome, record: RecordName = None) -> CommandApplied | CommandRejected:
    outcome = view.outcome
    if outcome.status == "applied":
        return CommandApplied(
            command_id=outcome.command_id,
            item_id=outcome.item_id,
            event_type=outcome.event_type,
            item=view.item,
            version=outcome.version,
            processed_at=outcome.processed_at,
            record=record,
            seq=outcome.seq or None,
        )
    reason = outcome.reason or "invalid"
    return CommandRejected(
        command_id=outcome.command_id,
        item_id=outcome.item_id,
        reason=reason,
        message=outcome.message or reason,
        record=record,
        seq=outcome.seq or None,
    )
