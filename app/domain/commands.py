"""What a client may ask for, checked field by field before anything is published.

Every rule broken is reported (not only the first) so a form can show each message next to
its field. The listener checks the same rules again when it decodes the event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.events import (
    EventData,
    EventType,
    ItemCreatedData,
    ItemDeletedData,
    ItemUpdatedData,
    StockAdjustedData,
    StockMovedData,
)
from app.domain.model import (
    DESCRIPTION_MAX,
    MAX_COMMAND_QUANTITY,
    NAME_MAX,
    REASON_MAX,
    SKU_PATTERN,
)

UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidCommand(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class CommandRequest:
    """A checked command, ready to become an event."""

    event_type: EventType
    item_id: str
    location: str
    data: EventData
    expected_version: int | None = None


class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field, message))

    def text(self, field: str, value: str | None, *, required: bool, max_length: int) -> str:
        if value is None:
            if required:
                self.fail(field, "is required")
            return ""
        stripped = value.strip()
        if required and not stripped:
            self.fail(field, "must not be empty")
        elif len(stripped) > max_length:
            self.fail(field, f"must be at most {max_length} characters")
        elif _CONTROL.search(stripped):
            self.fail(field, "must not contain control characters")
        return stripped

    def units(self, field: str, value: int, *, minimum: int) -> int:
        if value < minimum:
            self.fail(field, f"must be at least {minimum}")
        elif value > MAX_COMMAND_QUANTITY:
            self.fail(field, f"must be at most {MAX_COMMAND_QUANTITY}")
        return value

    def threshold(self, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_COMMAND_QUANTITY:
            self.fail("low_stock_threshold", f"must be between 0 and {MAX_COMMAND_QUANTITY}")
        return value

    def location(self, value: str | None, locations: tuple[str, ...], default: str) -> str:
        if value is None or value.strip() == "":
            return default
        code = value.strip().upper()
        if code not in locations:
            self.fail("location", f"unknown location {value!r}; known: {', '.join(locations)}")
        return code

    def raise_if_failed(self) -> None:
        if self.errors:
            raise InvalidCommand(self.errors)


def check_item_id(item_id: str) -> str:
    if not UUID_PATTERN.match(item_id):
        raise InvalidCommand([FieldError("item_id", "must be a UUID")])
    return item_id.lower()


def check_expected_version(raw: str | None) -> int | None:
    """Parse an If-Match header: a version number, quoted or not (``"3"``, ``W/"3"``, ``3``)."""
    if raw is None or raw.strip() in ("", "*"):
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 18:
        raise InvalidCommand([FieldError("If-Match", "must be an item version number")])
    return int(value)


def create_item(
    *,
    item_id: str,
    sku: str | None,
    name: str | None,
    description: str | None,
    quantity: int,
    location: str | None,
    locations: tuple[str, ...],
    default_location: str,
    low_stock_threshold: int | None = None,
) -> CommandRequest:
    check = _Checker()
    clean_sku = (sku or "").strip()
    if sku is None:
        check.fail("sku", "is required")
    elif not SKU_PATTERN.match(clean_sku):
        check.fail("sku", "must be 1-64 characters of A-Z a-z 0-9 . _ -")
    clean_name = check.text("name", name, required=True, max_length=NAME_MAX)
    clean_description = check.text("description", description, required=False, max_length=DESCRIPTION_MAX)
    check.units("quantity", quantity, minimum=0)
    code = check.location(location, locations, default_location)
    threshold = check.threshold(low_stock_threshold)
    check.raise_if_failed()
    data = ItemCreatedData(
        sku=clean_sku, name=clean_name, description=clean_description, quantity=quantity, low_stock_threshold=threshold
    )
    return CommandRequest(EventType.ITEM_CREATED, item_id, code, data)


def update_item(
    *,
    item_id: str,
    name: str | None,
    description: str | None,
    expected_version: int | None,
    default_location: str,
    low_stock_threshold: int | None = None,
) -> CommandRequest:
    check = _Checker()
    clean_name = check.text("name", name, required=True, max_length=NAME_MAX)
    clean_description = check.text("description", description, required=False, max_length=DESCRIPTION_MAX)
    threshold = check.threshold(low_stock_threshold)
    check.raise_if_failed()
    data = ItemUpdatedData(name=clean_name, description=clean_description, low_stock_threshold=threshold)
    return CommandRequest(EventType.ITEM_UPDATED, item_id, default_location, data, expected_version)


def delete_item(*, item_id: str, expected_version: int | None, default_location: str) -> CommandRequest:
    return CommandRequest(EventType.ITEM_DELETED, item_id, default_location, ItemDeletedData(), expected_version)


def adjust_stock(
    *,
    item_id: str,
    quantity: int,
    location: str | None,
    reason: str | None,
    expected_version: int | None,
    locations: tuple[str, ...],
    default_location: str,
) -> CommandRequest:
    check = _Checker()
    if quantity == 0:
        check.fail("quantity", "must be a non-zero change (negative removes stock)")
    elif abs(quantity) > MAX_COMMAND_QUANTITY:
        check.fail("quantity", f"must be between -{MAX_COMMAND_QUANTITY} and {MAX_COMMAND_QUANTITY}")
    clean_reason = check.text("reason", reason, required=False, max_length=REASON_MAX) or None
    code = check.location(location, locations, default_location)
    check.raise_if_failed()
    data = StockAdjustedData(quantity=quantity, reason=clean_reason)
    return CommandRequest(EventType.STOCK_ADJUSTED, item_id, code, data, expected_version)


def move_stock(
    *,
    event_type: EventType,
    item_id: str,
    quantity: int,
    location: str | None,
    expected_version: int | None,
    locations: tuple[str, ...],
    default_location: str,
) -> CommandRequest:
    """A reserve or a release: both move a positive number of units."""
    check = _Checker()
    check.units("quantity", quantity, minimum=1)
    code = check.location(location, locations, default_location)
    check.raise_if_failed()
    return CommandRequest(event_type, item_id, code, StockMovedData(quantity=quantity), expected_version)
