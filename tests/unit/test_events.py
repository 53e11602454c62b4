"""Decoding of command events: strict, so anything odd becomes a dead letter."""

from __future__ import annotations

import json
import uuid

import pytest

from app.domain.catalogue import StockMovedData, decode_event
from app.domain.catalogue.stock import StockReservedData
from app.domain.events import Event, EventType, PoisonMessage, encode_event


def event(**overrides: object) -> Event:
    fields: dict[str, object] = {
        "event_id": str(uuid.uuid4()),
        "event_type": EventType.STOCK_RESERVED,
        "item_id": str(uuid.uuid4()),
        "location": "MAIN",
        "command_id": str(uuid.uuid4()),
        "request_id": "r1",
        "actor": "clerk",
        "occurred_at": "2026-01-01T00:00:00.000Z",
        "data": StockReservedData(quantity=2),
    }
    fields.update(overrides)
    return Event(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    original = event(expected_version=3)
    assert decode_event(encode_event(original)) == original
    held = event(
        expected_version=3,
        data=StockReservedData(quantity=2, reference="ORDER-1", expires_at="2026-01-01T00:15:00.000Z"),
    )
    assert decode_event(encode_event(held)) == held
    released = event(event_type=EventType.STOCK_RELEASED, data=StockMovedData(quantity=2), expected_version=3)
    assert decode_event(encode_event(released)) == released


def test_the_envelope_is_compact_json_with_schema_version_one() -> None:
    raw = encode_event(event())
    assert b" " not in raw
    assert json.loads(raw)["schema_version"] == 1


def mutate(change: dict[str, object]) -> bytes:
    envelope = json.loads(encode_event(event()))
    envelope.update(change)
    return json.dumps(envelope).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "invalid envelope"),
        (None, "empty"),
        (b"[]", "invalid envelope"),
        (mutate({"schema_version": 2}), "unsupported schema_version"),
        (mutate({"event_type": "inventory.stock.teleported"}), "unknown event_type"),
        (mutate({"data": {"quantity": -1}}), "invalid data"),
        (mutate({"data": {"quantity": 10**12}}), "invalid data"),
        (mutate({"data": {}}), "invalid data"),
        (mutate({"item_id": "not-a-uuid"}), "invalid envelope"),
        (mutate({"location": "lower"}), "invalid envelope"),
        (mutate({"surprise": 1}), "invalid envelope"),
        (mutate({"event_type": "inventory.stock.adjusted", "data": {"quantity": 0}}), "non-zero"),
        (mutate({"event_type": "inventory.items.created", "data": {"sku": "bad sku", "name": "x"}}), "invalid data"),
    ],
)
def test_malformed_messages_are_poison_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        decode_event(raw)


def test_each_type_goes_to_its_topic() -> None:
    assert EventType.ITEM_CREATED.topic == "inventory.items"
    assert EventType.STOCK_RELEASED.topic == "inventory.stock"
