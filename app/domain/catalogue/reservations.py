"""Reservation commands by id: commit (sold), cancel, and the expiry the product publishes itself."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.domain import reservations
from app.domain.catalogue.fields import RecordId
from app.domain.catalogue.spec import CommandSpec, DecisionContext, RecordRef
from app.domain.events import Event, EventType, Uuid
from app.domain.model import Decision, Item
from app.domain.roles import Role


class ReservationData(msgspec.Struct, forbid_unknown_fields=True):
    reservation_id: Uuid


class NameReservation(msgspec.Struct, forbid_unknown_fields=True):
    reservation_id: Annotated[str, msgspec.Meta(description="the reservation's id, as the reserve answered it")]


def reservation_named(event: Event) -> str:
    data = event.data
    assert isinstance(data, ReservationData)
    return data.reservation_id


def _commit(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    return reservations.commit_reservation(
        item,
        reservation_id=reservation_named(event),
        expected_version=event.expected_version,
        submitted_at=event.occurred_at,
        now=context.now,
    )


def _cancel(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    return reservations.cancel_reservation(
        item, reservation_id=reservation_named(event), expected_version=event.expected_version, now=context.now
    )


def _expire(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    return reservations.expire_reservation(
        item, reservation_id=reservation_named(event), due_at=event.occurred_at, now=context.now
    )


def _nothing_at_the_event(event: Event) -> tuple[str, ...]:
    return ()


COMMIT_RESERVATION = CommandSpec(
    name="commit-reservation",
    event_type=EventType.RESERVATION_COMMITTED,
    data=ReservationData,
    body=NameReservation,
    fields={"reservation_id": RecordId()},
    decide=_commit,
    role=Role.CLERK,
    verb="Commit",
    summary="Commit a reservation (the units are sold)",
    description=(
        "On hand and reserved both drop by the reservation's units at its location. Rejected for an unknown "
        "reservation, one already closed, or one that expired before the commit was submitted."
    ),
    example={"reservation_id": "4d2b8c1a-7e3f-5a6b-8c9d-0e1f2a3b4c5d"},
    touches=_nothing_at_the_event,
    record=RecordRef("reservation", reservation_named),
)

CANCEL_RESERVATION = CommandSpec(
    name="cancel-reservation",
    event_type=EventType.RESERVATION_CANCELLED,
    data=ReservationData,
    body=NameReservation,
    fields={"reservation_id": RecordId()},
    decide=_cancel,
    role=Role.CLERK,
    verb="Cancel reservation",
    summary="Cancel a reservation",
    description="Its units become available again.",
    example={"reservation_id": "4d2b8c1a-7e3f-5a6b-8c9d-0e1f2a3b4c5d"},
    touches=_nothing_at_the_event,
    record=RecordRef("reservation", reservation_named),
)

EXPIRE_RESERVATION = CommandSpec(
    name="expire-reservation",
    event_type=EventType.RESERVATION_EXPIRED,
    data=ReservationData,
    body=None,
    fields={},
    decide=_expire,
    role=Role.ADMIN,
    verb="Expire",
    summary="A reservation's expiry (published by the listener's expiry process)",
    example={"reservation_id": "4d2b8c1a-7e3f-5a6b-8c9d-0e1f2a3b4c5d"},
    touches=_nothing_at_the_event,
    record=RecordRef("reservation", reservation_named),
    internal=True,
)
