"""The event envelope of DESIGN §4 and its strict decoding.

A command becomes exactly one event. Decoding is strict on purpose: anything that does not
match the schema is a poison message for the dead-letter topic, never a half-understood
change to stock.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import msgspec

from app.domain.model import (
    DESCRIPTION_MAX,
    MAX_COMMAND_QUANTITY,
    NAME_MAX,
    REASON_MAX,
)

SCHEMA_VERSION = 1
ITEMS_TOPIC = "inventory.items"
STOCK_TOPIC = "inventory.stock"
DLQ_TOPIC = "inventory.dlq"
CHANGES_TOPIC = "inventory.changes"
COMMAND_TOPICS = (ITEMS_TOPIC, STOCK_TOPIC)
# A header on a replayed dead letter: the id of the dead letter it came from.
REPLAY_HEADER = "replay-of"

Uuid = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
Sku = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]
Description = Annotated[str, msgspec.Meta(max_length=DESCRIPTION_MAX)]
Location = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9][A-Z0-9_-]{0,15}$")]
Units = Annotated[int, msgspec.Meta(ge=1, le=MAX_COMMAND_QUANTITY)]
Delta = Annotated[int, msgspec.Meta(ge=-MAX_COMMAND_QUANTITY, le=MAX_COMMAND_QUANTITY)]
Version = Annotated[int, msgspec.Meta(ge=0)]


class EventType(StrEnum):
    ITEM_CREATED = "inventory.items.created"
    ITEM_UPDATED = "inventory.items.updated"
    ITEM_DELETED = "inventory.items.deleted"
    STOCK_ADJUSTED = "inventory.stock.adjusted"
    STOCK_RESERVED = "inventory.stock.reserved"
    STOCK_RELEASED = "inventory.stock.released"

    @property
    def topic(self) -> str:
        return ITEMS_TOPIC if self.value.startswith("inventory.items.") else STOCK_TOPIC


Threshold = Annotated[int, msgspec.Meta(ge=0, le=MAX_COMMAND_QUANTITY)]


class ItemCreatedData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    sku: Sku
    name: Name
    description: Description = ""
    quantity: Annotated[int, msgspec.Meta(ge=0, le=MAX_COMMAND_QUANTITY)] = 0
    low_stock_threshold: Threshold | None = None


class ItemUpdatedData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name
    description: Description = ""
    low_stock_threshold: Threshold | None = None


class ItemDeletedData(msgspec.Struct, forbid_unknown_fields=True):
    pass


class StockAdjustedData(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Delta
    reason: Annotated[str, msgspec.Meta(max_length=REASON_MAX)] | None = None


class StockMovedData(msgspec.Struct, forbid_unknown_fields=True):
    """Data of a reserve or a release."""

    quantity: Units


EventData = ItemCreatedData | ItemUpdatedData | ItemDeletedData | StockAdjustedData | StockMovedData

DATA_TYPES: dict[EventType, type[EventData]] = {
    EventType.ITEM_CREATED: ItemCreatedData,
    EventType.ITEM_UPDATED: ItemUpdatedData,
    EventType.ITEM_DELETED: ItemDeletedData,
    EventType.STOCK_ADJUSTED: StockAdjustedData,
    EventType.STOCK_RESERVED: StockMovedData,
    EventType.STOCK_RELEASED: StockMovedData,
}


class Envelope(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The value of every message on a command topic."""

    event_id: Uuid
    event_type: str
    schema_version: int
    item_id: Uuid
    location: Location
    command_id: Uuid
    request_id: Annotated[str, msgspec.Meta(max_length=200)]
    actor: Annotated[str, msgspec.Meta(max_length=64)]
    occurred_at: str
    data: dict[str, Any]
    expected_version: Version | None = None


class Event(msgspec.Struct, frozen=True):
    """A decoded, checked command event."""

    event_id: str
    event_type: EventType
    item_id: str
    location: str
    command_id: str
    request_id: str
    actor: str
    occurred_at: str
    data: EventData
    expected_version: int | None = None

    @property
    def topic(self) -> str:
        return self.event_type.topic

    def headers(self) -> list[tuple[str, bytes]]:
        return [("event-type", self.event_type.value.encode()), ("event-id", self.event_id.encode())]


class PoisonMessage(ValueError):
    """A message that can never be applied: it goes to the dead-letter topic."""


_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(Envelope)


def encode_event(event: Event) -> bytes:
    envelope = Envelope(
        event_id=event.event_id,
        event_type=event.event_type.value,
        schema_version=SCHEMA_VERSION,
        item_id=event.item_id,
        location=event.location,
        command_id=event.command_id,
        request_id=event.request_id,
        actor=event.actor,
        occurred_at=event.occurred_at,
        data=msgspec.to_builtins(event.data),
        expected_version=event.expected_version,
    )
    return _encoder.encode(envelope)


def decode_event(value: bytes | None) -> Event:
    """Decode and check one message; raise PoisonMessage with a reason if it is not a valid event."""
    if value is None:
        raise PoisonMessage("empty message")
    try:
        envelope = _envelope_decoder.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PoisonMessage(f"invalid envelope: {exc}") from None
    if envelope.schema_version != SCHEMA_VERSION:
        raise PoisonMessage(f"unsupported schema_version {envelope.schema_version}")
    try:
        event_type = EventType(envelope.event_type)
    except ValueError:
        raise PoisonMessage(f"unknown event_type {envelope.event_type!r}") from None
    try:
        data = msgspec.convert(envelope.data, DATA_TYPES[event_type])
    except msgspec.ValidationError as exc:
        raise PoisonMessage(f"invalid data for {event_type.value}: {exc}") from None
    if event_type is EventType.STOCK_ADJUSTED and isinstance(data, StockAdjustedData) and data.quantity == 0:
        raise PoisonMessage("invalid data for inventory.stock.adjusted: quantity must be non-zero")
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
