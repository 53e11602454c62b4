"""The webhook dispatcher: runs in the listener role (in embedded mode, the one process).

Two kinds of work:

* **Fan-out** follows the outbox (the ``changes`` table, only committed changes are in it): it
  reads the changes after its cursor, turns each into events (app/domain/webhooks.py) and stores
  one delivery per endpoint that subscribed to the event's kind, together with the new cursor, in
  one transaction of webhooks.db. The listener never prunes the outbox past this cursor
  (``Dispatcher.prune_floor``, wired in app/bootstrap.py), so nothing committed is missed.
* **Delivery**: one worker per active endpoint, so a slow or failing endpoint only ever holds up
  itself. A worker sends the oldest pending delivery of each item (a failing one holds back the
  later ones of its item only), several at a time, with the shared HTTP client and a timeout,
  then records the round's outcomes (the accepted ones in one commit) before it picks again, so
  a delivery the receiver accepted is never picked twice. Failures are retried with backoff;
  after ``max_attempts`` a delivery is dead; ``pause_after`` dead in a row, or one 410 Gone,
  pause the endpoint. A worker that fails a round logs why and goes on; one that dies anyway is
  logged and restarted by the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import msgspec

from app.clock import parse_rfc3339, to_rfc3339
from app.domain.records import decode_change, for_screens
from app.domain.webhooks import Backoff, Verdict, delivery_body, events_of, signed_headers, verdict
from app.metrics import WEBHOOK_DELAY_SECONDS, WEBHOOK_DELIVERIES, WEBHOOK_PENDING
from app.reader import InventoryReader, ReadModelUnavailable
from app.webhooks.store import Delivery, Endpoint, NewDelivery, WebhookNotFound, WebhookStore, delivery_id
from app.webhooks.urls import WebhookUrlError, resolve

log = logging.getLogger(__name__)

FAN_OUT_BATCH = 500
IDLE_SECONDS = 0.25
SUPERVISE_SECONDS = 1.0
MAX_REST_SECONDS = 2.0
# Delivered deliveries are kept this long for the page and the API, then forgotten.
DELIVERED_RETENTION = timedelta(days=7)
PRUNE_EVERY_SECONDS = 600.0
USER_AGENT = "inventory-webhooks/1"


@dataclass(frozen=True)
class DispatchPolicy:
    timeout_seconds: float = 10.0
    max_attempts: int = 12
    backoff: Backoff = field(default_factory=Backoff)
    pause_after: int = 5
    allow_private: bool = False
    # Deliveries of different items in flight at once, per endpoint. 16 rather than 8 took a
    # local receiver from ~210 to ~270 a second; each round still ends with one commit.
    concurrency: int = 16


class Dispatcher:
    def __init__(self, store: WebhookStore, reader: InventoryReader, policy: DispatchPolicy) -> None:
        self._store = store
        self._reader = reader
        self._policy = policy
        self._client: httpx.AsyncClient | None = None
        self._workers: dict[str, asyncio.Task[None]] = {}
        # Replaced after each fan-out that stored deliveries: waiting workers wake at once.
        self._fanned = asyncio.Event()
        self._next_prune = 0.0

    async def prune_floor(self) -> int:
        """The newest outbox change fanned out: the listener keeps every change after it."""
        return await self._store.cursor()

    async def run(self) -> None:
        # httpx logs every request at INFO: one line per delivery attempt would drown the
        # process's log; attempts are counted in /metrics and kept in webhooks.db instead.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._policy.timeout_seconds),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            # Many endpoints, each with a few deliveries in flight.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._fan_out_forever(), name="webhook-fan-out")
                group.create_task(self._supervise_forever(), name="webhook-workers")
        finally:
            for task in self._workers.values():
                task.cancel()
            await asyncio.gather(*self._workers.values(), return_exceptions=True)
            self._workers.clear()
            await self._client.aclose()

    # --- fan-out ----------------------------------------------------------------------------

    async def _fan_out_forever(self) -> None:
        while True:
            try:
                moved = await self.fan_out_once()
            except ReadModelUnavailable:
                moved = False
            except Exception:
                log.exception("webhook fan-out failed; trying again")
                moved = False
            if not moved:
                await asyncio.sleep(IDLE_SECONDS)

    async def fan_out_once(self) -> bool:
        """Fan out the next changes; True when the cursor moved."""
        after = await self._store.cursor()
        rows = await self._reader.rows(
            "SELECT seq, payload, created_at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, FAN_OUT_BATCH)
        )
        if not rows:
            return False
        endpoints = await self._store.endpoints()
        deliveries: list[NewDelivery] = []
        for seq, payload, committed_at in rows:
            change = msgspec.structs.replace(for_screens(decode_change(payload)), seq=int(seq))
            for index, event in enumerate(events_of(change)):
                for endpoint in endpoints:
                    if endpoint.wants(event.kind):
                        the_id = delivery_id(endpoint.id, int(seq), index)
                        body = delivery_body(the_id, event.kind.value, committed_at, event.data)
                        deliveries.append(
                            NewDelivery(
                                endpoint.id, the_id, event.kind.value, event.item_id, body, int(seq), committed_at
                            )
                        )
        moved = await self._store.fan_out(after, int(rows[-1][0]), deliveries)
        if deliveries:
            self._wake()
        return moved

    def _wake(self) -> None:
        fanned, self._fanned = self._fanned, asyncio.Event()
        fanned.set()

    # --- workers ----------------------------------------------------------------------------

    async def _supervise_forever(self) -> None:
        while True:
            try:
                await self.supervise()
            except Exception:
                log.exception("webhook supervision failed; trying again")
            await asyncio.sleep(SUPERVISE_SECONDS)

    async def supervise(self) -> None:
        """One worker per active endpoint: start the missing ones, stop those paused or removed."""
        active = {e.id for e in await self._store.endpoints() if e.state == "active"}
        for endpoint_id, task in list(self._workers.items()):
            if endpoint_id not in active or task.done():
                task.cancel()
                del self._workers[endpoint_id]
        for endpoint_id in active - self._workers.keys():
            task = asyncio.create_task(self._work(endpoint_id), name=f"webhook-{endpoint_id}")
            task.add_done_callback(_log_death)
            self._workers[endpoint_id] = task
        WEBHOOK_PENDING.set(await self._store.pending_total())
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_SECONDS
            before = to_rfc3339(datetime.now(UTC) - DELIVERED_RETENTION)
            await self._store.prune_delivered(before)

    async def _work(self, endpoint_id: str) -> None:
        while True:
            try:
                endpoint = await self._store.endpoint(endpoint_id)
            except WebhookNotFound:
                return
            if endpoint.state != "active":
                return
            fanned = self._fanned
            started = time.monotonic()
            try:
                if await self._round(endpoint):
                    continue
            except Exception:
                # Logged, and the worker goes on: a task that died silently would leave its
                # endpoint to the supervisor's restarts, one round a second.
                log.exception("webhook worker of endpoint %s failed a round; trying again", endpoint_id)
            # Nothing due: wait for new deliveries (a fan-out wakes us) or for retries to come
            # due. A search that found nothing in a large backlog (every item held back by a
            # delivery in backoff) was costly: rest a few times its cost before the next one.
            await asyncio.sleep(min(MAX_REST_SECONDS, 4 * (time.monotonic() - started)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fanned.wait(), timeout=IDLE_SECONDS)

    async def _round(self, endpoint: Endpoint) -> bool:
        """Send the deliveries due now, at once, and record what came of them; False when none was due."""
        due = await self._store.due(endpoint.id, time.time(), self._policy.concurrency)
        if not due:
            return False
        answers = await asyncio.gather(*(self._send(endpoint, d) for d in due), return_exceptions=True)
        outcomes = [
            answer if isinstance(answer, tuple) else (None, f"{type(answer).__name__}: {answer}"[:500])
            for answer in answers
        ]
        # Shielded: once sent, the outcome is recorded even if the worker is being stopped (a
        # cancelled write would leave a delivered one pending, to be sent again).
        await asyncio.shield(self._record(endpoint, list(zip(due, outcomes, strict=True))))
        return True

    async def _record(self, endpoint: Endpoint, outcomes: list[tuple[Delivery, tuple[int | None, str]]]) -> None:
        accepted: list[tuple[Delivery, int]] = []
        failures: list[tuple[Delivery, Verdict, int | None, str]] = []
        for delivery, (status, error) in outcomes:
            outcome = verdict(status, delivery.attempts + 1, self._policy.max_attempts)
            WEBHOOK_DELIVERIES.labels(outcome.value).inc()
            if outcome is Verdict.DELIVERED:
                accepted.append((delivery, status or 200))
            else:
                failures.append((delivery, outcome, status, error))
        # The accepted ones first: whatever fails later, they are not sent again.
        await self._store.delivered_all(accepted)
        now = time.time()
        for delivery, _ in accepted:
            WEBHOOK_DELAY_SECONDS.observe(max(0.0, now - parse_rfc3339(delivery.committed_at).timestamp()))
        for delivery, outcome, status, error in failures:
            await self._failed(endpoint, delivery, outcome, status, error)

    async def _failed(
        self, endpoint: Endpoint, delivery: Delivery, outcome: Verdict, status: int | None, error: str
    ) -> None:
        attempts = delivery.attempts + 1
        paused = await self._store.failed(
            delivery,
            status=status,
            error=error,
            dead=outcome is Verdict.DEAD,
            next_attempt_at=time.time() + self._policy.backoff.delay(attempts),
            pause_after=self._policy.pause_after,
            pause_reason="the receiver answered 410 Gone" if outcome is Verdict.GONE else None,
        )
        if paused:
            log.warning("webhook endpoint %s paused: %s", endpoint.id, error)

    async def _send(self, endpoint: Endpoint, delivery: Delivery) -> tuple[int | None, str]:
        """POST the delivery once: its status (None when there was no answer) and what went wrong."""
        assert self._client is not None
        try:
            target = await resolve(endpoint.url, allow_private=self._policy.allow_private)
        except WebhookUrlError as exc:
            return None, f"refused: {exc}"
        headers = signed_headers(delivery.id, endpoint.secret, int(time.time()), delivery.body)
        headers["Host"] = target.host_header
        extensions = {"sni_hostname": target.host} if target.url.startswith("https:") else {}
        try:
            # Streamed: only the status counts, and a receiver answering with a huge body must
            # not make us read it (a few bytes of it go into the error).
            async with self._client.stream(
                "POST", target.pinned_url, content=delivery.body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
                if 200 <= status < 300:
                    return status, ""
                start = b""
                async for chunk in response.aiter_raw():
                    start += chunk
                    if len(start) >= 200:
                        break
        except httpx.TimeoutException:
            return None, f"no answer within {self._policy.timeout_seconds:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        said = start[:200].decode("utf-8", "replace").strip()
        return status, f"HTTP {status}: {said}" if said else f"HTTP {status}"


def _log_death(task: asyncio.Task[None]) -> None:
    """A worker that ended with an exception says so (nothing else reads a task's exception)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s died; the supervisor restarts it", task.get_name(), exc_info=exc)
