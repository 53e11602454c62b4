"""Accept a checked command: publish it durably, answer 202, and keep the answer for retries.

The order of writes is what makes the promise "never lost, never applied twice" hold:

* without an Idempotency-Key: publish (wait for the log's ack), then record the command,
  then answer. A crash before the answer leaves at most an event the client never heard of.
* with a key: record first (the key is the lock), publish, then store the answer. A retry
  finds the record and either returns the stored answer or publishes the *same* event again,
  which the listener drops as a duplicate by its event id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from app.clock import utc_now
from app.commands.outcomes import Outcome, OutcomeWaiter
from app.commands.store import AcceptedCommand, CommandLookup, CommandStore, IdempotencyKeyTaken
from app.domain.commands import CommandRequest
from app.domain.events import Event, EventType, ItemCreatedData, encode_event
from app.eventlog.base import EventLog, LogUnavailable, Message
from app.http.errors import ApiError, error_body, unavailable
from app.logs import command_id_var
from app.metrics import COMMANDS_ACCEPTED, COMMANDS_REFUSED, track_size
from app.reader import InventoryReader, ReadModelUnavailable
from app.settings import IDEMPOTENCY_KEY_SECONDS

log = logging.getLogger(__name__)

REQUEST_ID_REPLAY_SECONDS = 5 * 60
MAX_WAIT_SECONDS = 30.0
LIVE_CACHE_SECONDS = 5.0
LIVE_CACHE_SIZE = 100_000
# Commands with an Idempotency-Key being published by this process; beyond it a 503.
MAX_IN_FLIGHT = 10_000
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Submission:
    command: CommandRequest
    actor: str
    request_id: str
    request_hash: str
    wait_seconds: float = 0.0
    idempotency_key: str | None = None
    key_lifetime: float = IDEMPOTENCY_KEY_SECONDS
    # Fast rejections (404, 409) for a new command; a retry of an answered one skips them.
    precheck: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Reply:
    """An HTTP answer kept as bytes, so a retry gets exactly the same one."""

    status: int
    headers: dict[str, str]
    body: bytes


def request_fingerprint(method: str, path: str, body: bytes, if_match: str | None) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), (if_match or "").encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def status_url(command_id: str) -> str:
    return f"/api/v1/commands/{command_id}"


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
    ) -> None:
        self.locations = locations
        self.default_location = default_location
        self._log = event_log
        self._store = store
        self._lookup = lookup
        self._reader = reader
        self._waiter = waiter
        self._in_flight: dict[str, asyncio.Future[Reply]] = {}
        # Items seen alive a moment ago: the fast 404 is only a courtesy (the listener decides),
        # so a few seconds of staleness are harmless and save a read on every stock command.
        self._recently_live: dict[str, float] = {}
        track_size("recently_live_items", LIVE_CACHE_SIZE, lambda: len(self._recently_live))
        track_size("commands_in_flight", MAX_IN_FLIGHT, lambda: len(self._in_flight))

    # --- fast rejections, no round trip through the log ---------------------------------

    async def ensure_item_exists(self, item_id: str, event_type: EventType) -> None:
        """404 for an item that does not exist, but never for one whose create is still pending."""
        if self._recently_live.get(item_id, 0.0) > time.monotonic():
            return
        try:
            state = await self._reader.item_state(item_id)
        except ReadModelUnavailable:
            state = None
        if state == "live":
            if len(self._recently_live) >= LIVE_CACHE_SIZE:
                self._recently_live.clear()
            self._recently_live[item_id] = time.monotonic() + LIVE_CACHE_SECONDS
            return
        if state is None and await self._pending_create(item_id=item_id):
            return
        COMMANDS_REFUSED.labels(event_type.value, "unknown_item").inc()
        raise ApiError(404, "no such item", details={"item_id": item_id, "reason": "unknown_item"})

    async def ensure_sku_free(self, sku: str) -> None:
        try:
            taken = await self._reader.sku_taken(sku)
        except ReadModelUnavailable:
            taken = False
        if taken or await self._pending_create(sku=sku):
            COMMANDS_REFUSED.labels(EventType.ITEM_CREATED.value, "duplicate_sku").inc()
            raise ApiError(409, f"sku {sku!r} is already taken", details={"sku": sku, "reason": "duplicate_sku"})

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

    async def submit(self, submission: Submission) -> Reply:
        key = submission.idempotency_key
        if key is not None:
            return await self._submit_with_key(submission, key)
        if submission.precheck is not None:
            await submission.precheck()
        accepted = self._new_command(submission)
        await self._publish(accepted, submission)
        COMMANDS_ACCEPTED.labels(accepted.event_type).inc()
        try:
            await self._store.record(accepted)
        except Exception:
            # The event is durably in the log and will be applied: the client must hear so.
            log.exception("accepted command %s could not be recorded", accepted.command_id)
        return await self._answer(accepted, submission)

    async def _submit_with_key(self, submission: Submission, key: str) -> Reply:
        while True:
            existing = await self._store.by_idempotency_key(submission.actor, key)
            if existing is not None:
                return await self._replay(existing, submission)
            if submission.precheck is not None:
                await submission.precheck()
            accepted = self._new_command(submission, key=key, state="publishing")
            try:
                await self._store.record(accepted)
            except IdempotencyKeyTaken:
                continue  # a concurrent request with this key won; answer as its retry
            break
        return await self._complete(accepted, submission)

    async def _complete(self, accepted: AcceptedCommand, submission: Submission) -> Reply:
        """Publish a recorded command and store the answer, once per process at a time."""
        running = self._in_flight.get(accepted.command_id)
        if running is not None:
            return await asyncio.shield(running)
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            raise unavailable("too many commands in progress; retry with the same Idempotency-Key")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._in_flight[accepted.command_id] = future
        try:
            await self._publish(accepted, submission)
            COMMANDS_ACCEPTED.labels(accepted.event_type).inc()
            reply = await self._answer(accepted, submission)
            await self._store.save_response(accepted.command_id, reply.status, reply.headers, reply.body)
            future.set_result(reply)
            return reply
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: nobody else may be waiting
            raise
        finally:
            del self._in_flight[accepted.command_id]

    async def _replay(self, existing: AcceptedCommand, submission: Submission) -> Reply:
        if existing.request_hash != submission.request_hash:
            raise ApiError(
                422,
                "this idempotency key was used with a different request",
                details={"command_id": existing.command_id},
            )
        if existing.response_status is not None and existing.response_body is not None:
            return Reply(existing.response_status, existing.response_headers or {}, existing.response_body)
        # Recorded but never answered (a crash, or the log was down): publish the same event
        # again. If the first attempt did reach the log, the listener drops this copy.
        return await self._complete(existing, submission)

    def _new_command(
        self, submission: Submission, *, key: str | None = None, state: str = "published"
    ) -> AcceptedCommand:
        command = submission.command
        if command.event_type is EventType.ITEM_DELETED:
            self._recently_live.pop(command.item_id, None)
        event = Event(
            event_id=str(uuid.uuid4()),
            event_type=command.event_type,
            item_id=command.item_id,
            location=command.location,
            command_id=str(uuid.uuid4()),
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
            sku=command.data.sku if isinstance(command.data, ItemCreatedData) else None,
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
            log.warning("event log unavailable: answered 503 for command %s", accepted.command_id)
            if accepted.idem_key is not None:
                await self._store.set_state(accepted.command_id, "failed")
            raise unavailable("the event log is unavailable; nothing was accepted, retry later") from None

    # --- answering ------------------------------------------------------------------------

    async def _answer(self, accepted: AcceptedCommand, submission: Submission) -> Reply:
        location = status_url(accepted.command_id)
        headers = {"Location": location, "X-Command-ID": accepted.command_id}
        if submission.wait_seconds > 0:
            outcome = await self._waiter.wait(accepted.command_id, min(submission.wait_seconds, MAX_WAIT_SECONDS))
            headers["Preference-Applied"] = f"wait={_seconds(submission.wait_seconds)}"
            if outcome is not None:
                return _outcome_reply(outcome, headers)
        body = {
            "command_id": accepted.command_id,
            "item_id": accepted.item_id,
            "status": "pending",
            "status_url": location,
        }
        return Reply(202, headers, _encode(body))


class _EventId(msgspec.Struct):
    event_id: str


_read_event_id = msgspec.json.Decoder(_EventId).decode


def _event_id(accepted: AcceptedCommand) -> str:
    return _read_event_id(accepted.event).event_id


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _outcome_reply(outcome: Outcome, headers: dict[str, str]) -> Reply:
    command_id = outcome["command_id"]
    if outcome["status"] == "applied":
        item: Any = outcome.get("item")
        if outcome["event_type"] == EventType.ITEM_CREATED.value and item is not None:
            headers = {**headers, "Location": f"/api/v1/inventory/items/{item['id']}"}
            return Reply(201, headers, _encode(item))
        if item is None:  # a delete: nothing left to show but the outcome
            item = {k: outcome.get(k) for k in ("command_id", "status", "item_id", "version", "processed_at")}
        return Reply(200, headers, _encode(item))
    reason = outcome.get("reason") or "invalid"
    status = 404 if reason == "unknown_item" else 409
    body = error_body(
        "CommandRejected",
        outcome.get("message") or reason,
        {"command_id": command_id, "reason": reason, "status_url": status_url(command_id)},
    )
    return Reply(status, headers, _encode(body))
