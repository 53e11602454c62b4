"""The event envelope: what every message on a command topic carries around its data.

A command becomes exactly one event. Each command's data struct is declared with the command
in app/domain/catalogue; decoding (strict on purpose: anything that does not match the schema is
a poison message for the dead-letter topic, never a half-understood change to stock) is
app/domain/catalogue/__init__.py:decode_event.
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
from app.domain.rules import LOCATION_REGEX, SKU_REGEX, STORED_UUID_REGEX

SCHEMA_VERSION = 1
ITEMS_TOPIC = "inventory.items"
STOCK_TOPIC = "inventory.stock"
DLQ_TOPIC = "inventory.dlq"
CHANGES_TOPIC = "inventory.changes"
COMMAND_TOPICS = (ITEMS_TOPIC, STOCK_TOPIC)
# A header on a replayed dead letter: the id of the dead letter it came from.
REPLAY_HEADER = "replay-of"

Uuid = Annotated[str, msgspec.Meta(pattern=STORED_UUID_REGEX)]
Sku = Annotated[str, msgspec.Meta(pattern=SKU_REGEX)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]
Description = Annotated[str, msgspec.Meta(max_length=DESCRIPTION_MAX)]
Location = Annotated[str, msgspec.Meta(pattern=LOCATION_REGEX)]
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
    STOCK_COUNTED = "inventory.stock.counted"
    STOCK_TRANSFERRED = "inventory.stock.transferred"
    TRANSFER_SHIPPED = "inventory.stock.transfer_shipped"
    TRANSFER_RECEIVED = "inventory.stock.transfer_received"
    TRANSFER_CANCELLED = "inventory.stock.transfer_cancelled"
    RESERVATION_COMMITTED = "inventory.stock.reservation_committed"
    RESERVATION_CANCELLED = "inventory.stock.reservation_cancelled"
    RESERVATION_EXPIRED = "inventory.stock.reservation_expired"

    @property
    def topic(self) -> str:
        return ITEMS_TOPIC if self.value.startswith("inventory.items.") else STOCK_TOPIC


Threshold = Annotated[int, msgspec.Meta(ge=0, le=MAX_COMMAND_QUANTITY)]
Reason = Annotated[str, msgspec.Meta(max_length=REASON_MAX)]
Note = Annotated[str, msgspec.Meta(max_length=REASON_MAX)]
# A moment in the one format of the data (app/domain/rules.py moment_text): compares as text.
Moment = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]


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
    data: msgspec.Struct
    expected_version: int | None = None

    @property
    def topic(self) -> str:
        return self.event_type.topic

    def headers(self) -> list[tuple[str, bytes]]:
        return [("event-type", self.event_type.value.encode()), ("event-id", self.event_id.encode())]


class PoisonMessage(ValueError):
    """A message that can never be applied: it goes to the dead-letter topic."""


_encoder = msgspec.json.Encoder()
envelope_decoder = msgspec.json.Decoder(Envelope)


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
