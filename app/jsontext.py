"""Compact JSON as text, for what is stored in SQLite columns and in Redis."""

from __future__ import annotations

from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()


def json_text(value: Any) -> str:
    return _encoder.encode(value).decode()
