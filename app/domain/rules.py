"""The rules every layer shares, each written once: what a SKU, an id and a location code look
like, and when stock counts as low.

Pure: patterns and small functions, imported by the domain, the HTTP edge, the OpenAPI
document, the pages and the templates (through the rendering environment).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum

SKU_REGEX = r"^[A-Za-z0-9._-]{1,64}$"
SKU_PATTERN = re.compile(SKU_REGEX)
SKU_RULE_TEXT = "1-64 characters of A-Z a-z 0-9 . _ -"
# Accepted in any case on the way in; stored and compared in lower case.
UUID_REGEX = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UUID_PATTERN = re.compile(UUID_REGEX)
# Stored ids are lower case; events on the log carry only these.
STORED_UUID_REGEX = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
LOCATION_REGEX = r"^[A-Z0-9][A-Z0-9_-]{0,15}$"
LOCATION_PATTERN = re.compile(LOCATION_REGEX)


def is_uuid(value: str) -> bool:
    return UUID_PATTERN.match(value) is not None


def normalise_uuid(value: str) -> str | None:
    """The stored form of an id, or None when it is not one."""
    return value.lower() if UUID_PATTERN.match(value) else None


def normalise_location(raw: str | None) -> str:
    """A location code as typed (any case, stray spaces) in its stored form; "" when absent."""
    return (raw or "").strip().upper()


class StockState(StrEnum):
    OK = "ok"
    LOW = "low"
    OUT = "out"


def stock_state(available: int, threshold: int | None, default_threshold: int) -> StockState:
    """Out when nothing is available; low at or below the item's threshold (or the default)."""
    if available <= 0:
        return StockState.OUT
    limit = default_threshold if threshold is None else threshold
    return StockState.LOW if available <= limit else StockState.OK


def attention_rank(available: int, threshold: int | None, default_threshold: int) -> tuple[int, int]:
    """How urgently a level needs attention, most urgent smallest: out of stock first, then low
    ones by how far below their threshold they are, then the rest. The walls and the low-stock
    page order by it; app/reader.py:ATTENTION_ORDER is the same rule in SQL."""
    limit = default_threshold if threshold is None else threshold
    state = stock_state(available, threshold, default_threshold)
    group = {StockState.OUT: 0, StockState.LOW: 1, StockState.OK: 2}[state]
    return group, available - limit


def moment_text(moment: datetime) -> str:
    """The one time format of the API and the data (RFC 3339, UTC, milliseconds): moments in it
    compare correctly as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
