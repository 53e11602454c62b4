"""Compact JSON: what is stored in SQLite columns and in Redis, and change records as published."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()

# A JSON object (text or bytes) as a dict: change records, outcomes, stored payloads.
json_object = msgspec.json.Decoder(dict[str, Any]).decode


def json_text(value: Any) -> str:
    return _encoder.encode(value).decode()


def change_record(seq: int, payload: str) -> bytes:
    """A stored change (the compact JSON text of an object) as published on the change feed: the
    same object with its commit sequence number first. The relay publishes these bytes, and the
    query side rebuilds the very same bytes from the outbox when it catches up or replays."""
    return b'{"seq":%d,%s' % (seq, payload.encode()[1:])
