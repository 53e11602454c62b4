"""Field rules of command bodies: each rule checks a value and describes itself for OpenAPI.

A command declares one rule per body field (app/domain/catalogue/items.py, stock.py). The same
rule cleans a JSON value, a form's text and writes the constraint into the OpenAPI document, so
what the document promises is what the checks accept. Every broken rule is reported, not only
the first, so a form can show each message next to its field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from app.domain.model import MAX_COMMAND_QUANTITY
from app.domain.rules import (
    SKU_PATTERN,
    SKU_REGEX,
    SKU_RULE_TEXT,
    UUID_REGEX,
    moment_text,
    normalise_location,
    normalise_uuid,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same rules as regular expressions, for the OpenAPI document.
NO_CONTROL_REGEX = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
SOME_TEXT_REGEX = (
    # \x85 (next line) is spelled out: Python's strip() removes it, but JSON Schema's \s does not match it.
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*[^\s\x85\x00-\x08\x0b\x0c\x0e-\x1f\x7f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidCommand(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Places:
    """The locations a command may name, and the one it gets when it names none."""

    locations: tuple[str, ...]
    default: str


@dataclass
class Checker:
    places: Places
    errors: list[FieldError] = field(default_factory=list)
    # When the command is checked: an expiry given in seconds becomes a moment from this.
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def fail(self, name: str, message: str) -> None:
        self.errors.append(FieldError(name, message))

    def raise_if_failed(self) -> None:
        if self.errors:
            raise InvalidCommand(self.errors)


class FieldRule(Protocol):
    @property
    def numeric(self) -> bool:
        """Form values arrive as text; a numeric rule's value is parsed as a whole number first."""
        ...

    def clean(self, name: str, value: Any, check: Checker) -> Any: ...

    def schema(self, places: Places) -> dict[str, Any]:
        """OpenAPI keywords for the field, as attribute names of an OpenAPI schema object
        (``not_const`` stands for ``not: {const: ...}``)."""
        ...


@dataclass(frozen=True)
class Text:
    max_length: int
    required: bool = False
    # An optional note: blank is the same as absent.
    blank_is_none: bool = False
    numeric: bool = False

    def clean(self, name: str, value: Any, check: Checker) -> str | None:
        if value is None:
            if self.required:
                check.fail(name, "is required")
            return None if self.blank_is_none else ""
        stripped = str(value).strip()
        if self.required and not stripped:
            check.fail(name, "must not be empty")
        elif len(stripped) > self.max_length:
            check.fail(name, f"must be at most {self.max_length} characters")
        elif _CONTROL.search(stripped):
            check.fail(name, "must not contain control characters")
        if self.blank_is_none and not stripped:
            return None
        return stripped

    def schema(self, places: Places) -> dict[str, Any]:
        if self.required:
            return {"min_length": 1, "max_length": self.max_length, "pattern": SOME_TEXT_REGEX}
        return {"max_length": self.max_length, "pattern": NO_CONTROL_REGEX}


@dataclass(frozen=True)
class Sku:
    numeric: bool = False

    def clean(self, name: str, value: Any, check: Checker) -> str:
        if value is None:
            check.fail(name, "is required")
            return ""
        clean = str(value).strip()
        if not SKU_PATTERN.match(clean):
            check.fail(name, f"must be {SKU_RULE_TEXT}")
        return clean

    def schema(self, places: Places) -> dict[str, Any]:
        return {"pattern": SKU_REGEX, "min_length": 1, "max_length": 64}


@dataclass(frozen=True)
class Units:
    """A whole number of units between ``minimum`` and the per-command maximum."""

    minimum: int
    default: int | None = None
    numeric: bool = True
    # Absent stays absent (None): the command has a meaning for "not given".
    optional: bool = False

    def clean(self, name: str, value: Any, check: Checker) -> int | None:
        if value is None:
            if self.default is not None or self.optional:
                return self.default
            check.fail(name, "is required")
            return 0
        if value < self.minimum:
            check.fail(name, f"must be at least {self.minimum}")
        elif value > MAX_COMMAND_QUANTITY:
            check.fail(name, f"must be at most {MAX_COMMAND_QUANTITY}")
        return int(value)

    def schema(self, places: Places) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": MAX_COMMAND_QUANTITY}


@dataclass(frozen=True)
class Change:
    """A signed, non-zero change of units."""

    numeric: bool = True

    def clean(self, name: str, value: Any, check: Checker) -> int:
        if value is None:
            check.fail(name, "is required")
            return 0
        if value == 0:
            check.fail(name, "must be a non-zero change (negative removes stock)")
        elif abs(value) > MAX_COMMAND_QUANTITY:
            check.fail(name, f"must be between -{MAX_COMMAND_QUANTITY} and {MAX_COMMAND_QUANTITY}")
        return int(value)

    def schema(self, places: Places) -> dict[str, Any]:
        return {"minimum": -MAX_COMMAND_QUANTITY, "maximum": MAX_COMMAND_QUANTITY, "not_const": 0}


@dataclass(frozen=True)
class Threshold:
    """Optional: low stock at or below this many available; absent means the default."""

    numeric: bool = True

    def clean(self, name: str, value: Any, check: Checker) -> int | None:
        if value is not None and not 0 <= value <= MAX_COMMAND_QUANTITY:
            check.fail(name, f"must be between 0 and {MAX_COMMAND_QUANTITY}")
        return None if value is None else int(value)

    def schema(self, places: Places) -> dict[str, Any]:
        return {"minimum": 0, "maximum": MAX_COMMAND_QUANTITY}


@dataclass(frozen=True)
class Location:
    """A configured location code, in any case; absent means the default location (unless required)."""

    numeric: bool = False
    required: bool = False

    def clean(self, name: str, value: Any, check: Checker) -> str:
        code = normalise_location(value)
        if not code:
            if self.required:
                check.fail(name, "is required")
            return check.places.default
        if code not in check.places.locations:
            check.fail(name, f"unknown location {value!r}; known: {', '.join(check.places.locations)}")
        return code

    def schema(self, places: Places) -> dict[str, Any]:
        return {"enum": list(places.locations)}


@dataclass(frozen=True)
class Choice:
    """One of a closed list of words; absent means ``default``."""

    values: tuple[str, ...]
    default: str | None = None
    numeric: bool = False

    def clean(self, name: str, value: Any, check: Checker) -> str | None:
        text = "" if value is None else str(value).strip().lower()
        if not text:
            if self.default is None:
                check.fail(name, "is required")
            return self.default
        if text not in self.values:
            check.fail(name, f"must be one of: {', '.join(self.values)}")
        return text

    def schema(self, places: Places) -> dict[str, Any]:
        return {"enum": list(self.values)}


@dataclass(frozen=True)
class RecordId:
    """The id of a transfer or a reservation (a UUID)."""

    numeric: bool = False

    def clean(self, name: str, value: Any, check: Checker) -> str:
        stored = normalise_uuid(str(value)) if value is not None else None
        if stored is None:
            check.fail(name, "is required" if value is None else "must be a UUID")
            return ""
        return stored

    def schema(self, places: Places) -> dict[str, Any]:
        return {"pattern": UUID_REGEX}


@dataclass(frozen=True)
class Seconds:
    """Optional: a whole number of seconds from ``minimum`` to ``maximum``."""

    minimum: int
    maximum: int
    numeric: bool = True

    def clean(self, name: str, value: Any, check: Checker) -> int | None:
        if value is not None and not self.minimum <= value <= self.maximum:
            check.fail(name, f"must be between {self.minimum} and {self.maximum} seconds")
        return None if value is None else int(value)

    def schema(self, places: Places) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": self.maximum}


# Moments a UTC text cannot hold (year 1 at +05:00, year 9999 at -05:00): kept as the nearest
# one it can, which the decision then refuses as past or too far ahead.
FAR_PAST = "0001-01-01T00:00:00.000Z"
FAR_FUTURE = "9999-12-31T23:59:59.999Z"


@dataclass(frozen=True)
class Moment:
    """Optional: an RFC 3339 time, kept in the one format the data uses (app/domain/rules.py
    moment_text), so moments compare as text. Whether it is in the future and not too far is
    the decision's to say (from the time the command was submitted), so a replay says the same."""

    numeric: bool = False

    def clean(self, name: str, value: Any, check: Checker) -> str | None:
        text = "" if value is None else str(value).strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            check.fail(name, "must be an RFC 3339 time, e.g. 2026-12-03T18:00:00Z")
            return None
        if moment.tzinfo is None:
            check.fail(name, "must include a time zone (Z or +hh:mm)")
            return None
        try:
            return moment_text(moment)
        except (OverflowError, ValueError):
            return FAR_PAST if moment.year < 5000 else FAR_FUTURE

    def schema(self, places: Places) -> dict[str, Any]:
        return {"format": "date-time"}


def parse_form(rules: dict[str, FieldRule], form: dict[str, str]) -> tuple[dict[str, Any], list[FieldError]]:
    """A form's text values as the values a JSON body would carry: numbers parsed, blank numbers absent."""
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, rule in rules.items():
        raw = form.get(name)
        if not rule.numeric:
            values[name] = raw
            continue
        if raw is None or raw.strip() == "":
            values[name] = None
            continue
        try:
            values[name] = int(raw.strip())
        except ValueError:
            errors.append(FieldError(name, "must be a whole number"))
            values[name] = None
    return values, errors


def check_item_id(item_id: str) -> str:
    stored = normalise_uuid(item_id)
    if stored is None:
        raise InvalidCommand([FieldError("item_id", "must be a UUID")])
    return stored


def check_expected_version(raw: str | None) -> int | None:
    """Parse an If-Match header: a version number, quoted or not (``"3"``, ``W/"3"``, ``3``)."""
    if raw is None or raw.strip() in ("", "*"):
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 18:
        raise InvalidCommand([FieldError("If-Match", "must be an item version number")])
    return int(value)
