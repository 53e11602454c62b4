"""Field rules of command bodies: each rule checks a value and describes itself for OpenAPI.

A command declares one rule per body field (app/domain/catalogue/items.py, stock.py). The same
rule cleans a JSON value, a form's text and writes the constraint into the OpenAPI document, so
what the document promises is what the checks accept. Every broken rule is reported, not only
the first, so a form can show each message next to its field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.domain.model import MAX_COMMAND_QUANTITY
from app.domain.rules import SKU_PATTERN, SKU_REGEX, SKU_RULE_TEXT, normalise_location, normalise_uuid

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same rules as regular expressions, for the OpenAPI document.
NO_CONTROL_REGEX = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
SOME_TEXT_REGEX = (
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*[^\s\x00-\x08\x0b\x0c\x0e-\x1f\x7f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
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

    def clean(self, name: str, value: Any, check: Checker) -> int:
        if value is None:
            if self.default is not None:
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
    """A configured location code, in any case; absent means the default location."""

    numeric: bool = False

    def clean(self, name: str, value: Any, check: Checker) -> str:
        code = normalise_location(value)
        if not code:
            return check.places.default
        if code not in check.places.locations:
            check.fail(name, f"unknown location {value!r}; known: {', '.join(check.places.locations)}")
        return code

    def schema(self, places: Places) -> dict[str, Any]:
        return {"enum": list(places.locations)}


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
