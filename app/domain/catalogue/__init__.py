"""The command catalogue: every command the product accepts, and the event decoder derived from it.

The HTTP routes (app/commands/routes.py), the forms (app/web/forms.py), the OpenAPI document
(app/http/openapi.py), the decoder below and the listener's dispatch (app/listener/planner.py)
all read this registry; none of them lists commands of its own.
"""

from __future__ import annotations

import msgspec

from app.domain.catalogue.fields import (
    FieldError,
    InvalidCommand,
    Places,
    check_expected_version,
    check_item_id,
    parse_form,
)
from app.domain.catalogue.items import CREATE, DELETE, UPDATE, ItemCreatedData, ItemDeletedData, ItemUpdatedData
from app.domain.catalogue.reservations import CANCEL_RESERVATION, COMMIT_RESERVATION, EXPIRE_RESERVATION
from app.domain.catalogue.spec import CommandRequest, CommandSpec, DecisionContext
from app.domain.catalogue.stock import ADJUST, COUNT, RELEASE, RESERVE, StockAdjustedData, StockMovedData
from app.domain.catalogue.transfers import CANCEL_TRANSFER, RECEIVE, SHIP, TRANSFER
from app.domain.events import SCHEMA_VERSION, Event, EventType, PoisonMessage, envelope_decoder

COMMANDS: tuple[CommandSpec, ...] = (
    CREATE,
    UPDATE,
    DELETE,
    ADJUST,
    COUNT,
    RESERVE,
    RELEASE,
    COMMIT_RESERVATION,
    CANCEL_RESERVATION,
    EXPIRE_RESERVATION,
    TRANSFER,
    SHIP,
    RECEIVE,
    CANCEL_TRANSFER,
)
# What people and clients may send: every command but the ones the product publishes itself.
PUBLIC_COMMANDS: tuple[CommandSpec, ...] = tuple(spec for spec in COMMANDS if not spec.internal)
BY_EVENT_TYPE: dict[EventType, CommandSpec] = {spec.event_type: spec for spec in COMMANDS}
BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in COMMANDS}

assert len(BY_EVENT_TYPE) == len(COMMANDS) == len(BY_NAME), "one event type and one name per command"
assert set(BY_EVENT_TYPE) == set(EventType), "every event type is declared in the catalogue"

__all__ = [
    "BY_EVENT_TYPE",
    "BY_NAME",
    "COMMANDS",
    "PUBLIC_COMMANDS",
    "CommandRequest",
    "CommandSpec",
    "DecisionContext",
    "FieldError",
    "InvalidCommand",
    "ItemCreatedData",
    "ItemDeletedData",
    "ItemUpdatedData",
    "Places",
    "StockAdjustedData",
    "StockMovedData",
    "body_types",
    "check_expected_version",
    "check_item_id",
    "decode_event",
    "parse_form",
]


def body_types() -> tuple[type[msgspec.Struct], ...]:
    """Every request body, once (reserve and release share one)."""
    return tuple(dict.fromkeys(spec.body for spec in COMMANDS if spec.body is not None))


def decode_event(value: bytes | None) -> Event:
    """Decode and check one message; raise PoisonMessage with a reason if it is not a valid event."""
    if value is None:
        raise PoisonMessage("empty message")
    try:
        envelope = envelope_decoder.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PoisonMessage(f"invalid envelope: {exc}") from None
    if envelope.schema_version != SCHEMA_VERSION:
        raise PoisonMessage(f"unsupported schema_version {envelope.schema_version}")
    try:
        event_type = EventType(envelope.event_type)
    except ValueError:
        raise PoisonMessage(f"unknown event_type {envelope.event_type!r}") from None
    try:
        data = msgspec.convert(envelope.data, BY_EVENT_TYPE[event_type].data)
    except msgspec.ValidationError as exc:
        raise PoisonMessage(f"invalid data for {event_type.value}: {exc}") from None
    return Event(
        event_id=envelope.event_id,
        event_type=event_type,
        item_id=envelope.item_id,
        location=envelope.location,
        command_id=envelope.command_id,
        request_id=envelope.request_id,
        actor=envelope.actor,
        occurred_at=envelope.occurred_at,
        data=data,
        expected_version=envelope.expected_version,
    )
