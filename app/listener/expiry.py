"""Reservations that expire: each one's expiry is published to the log when due, as an event
like any other, and the listener applies it only if the reservation is still open.

Nothing is remembered outside the database: every round reads the open reservations that are
due, so a listener killed and restarted publishes what is still due again. Each expiry has a
fixed event id and command id (app/domain/ids.py), so a second copy is dropped as a duplicate
and its outcome is recorded once; in memory it only keeps from publishing the same expiry every
round while the first copy is on its way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from app.clock import utc_now
from app.domain.catalogue.reservations import ReservationData
from app.domain.events import Event, EventType, encode_event
from app.domain.ids import expiry_ids
from app.eventlog.base import EventLog, Message
from app.metrics import EXPIRIES_PUBLISHED

EXPIRY_ACTOR = "system:expiry"
# Published and still open after this long (the listener was busy or down): publish it again.
REPUBLISH_SECONDS = 30.0
ROUND_LIMIT = 500


class DueReservations(Protocol):
    async def due_reservations(self, now: str, limit: int) -> list[tuple[str, str, str, str]]: ...


def expiry_event(reservation_id: str, item_id: str, location: str, now: str) -> Event:
    event_id, command_id = expiry_ids(reservation_id)
    return Event(
        event_id=event_id,
        event_type=EventType.RESERVATION_EXPIRED,
        item_id=item_id,
        location=location,
        command_id=command_id,
        request_id=f"expiry:{reservation_id}",
        actor=EXPIRY_ACTOR,
        occurred_at=now,
        data=ReservationData(reservation_id=reservation_id),
    )


class ExpiryPublisher:
    def __init__(self, event_log: EventLog, store: DueReservations) -> None:
        self._log = event_log
        self._store = store
        self._published: dict[str, float] = {}

    async def publish_due(self) -> int:
        """Publish the expiry of every open reservation due now; how many were published."""
        now = utc_now()
        due = await self._store.due_reservations(now, ROUND_LIMIT)
        clock = time.monotonic()
        fresh = [row for row in due if self._published.get(row[0], 0.0) <= clock]
        if not fresh:
            self._forget_closed(due)
            return 0
        events = [expiry_event(reservation, item, location, now) for reservation, item, location, _ in fresh]
        await self._log.publish([_message(event) for event in events])
        for reservation, *_ in fresh:
            self._published[reservation] = clock + REPUBLISH_SECONDS
        self._forget_closed(due)
        EXPIRIES_PUBLISHED.inc(len(events))
        return len(events)

    def _forget_closed(self, due: Sequence[tuple[str, str, str, str]]) -> None:
        # What is no longer due is closed (applied, committed, cancelled): forget it, so the
        # memory holds at most one round's reservations.
        still_due = {row[0] for row in due}
        for reservation in [r for r in self._published if r not in still_due]:
            del self._published[reservation]


def _message(event: Event) -> Message:
    return Message(event.topic, event.item_id.encode(), encode_event(event), tuple(event.headers()))
