"""What a command is, declared once: the HTTP routes, the forms, the OpenAPI document, the event
decoder and the listener's dispatch are all derived from these declarations.

See docs/architecture.md, "Adding a command", for the steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from app.domain.catalogue.fields import Checker, FieldRule, InvalidCommand, Places, parse_form
from app.domain.events import Event, EventType
from app.domain.model import Decision, Item
from app.domain.roles import Role


@dataclass(frozen=True)
class CommandRequest:
    """A checked command, ready to become an event."""

    event_type: EventType
    item_id: str
    location: str
    data: msgspec.Struct
    expected_version: int | None = None


@dataclass(frozen=True)
class DecisionContext:
    """What a decision may know beyond the item: the time, and who owns a SKU."""

    now: str
    sku_owner: Callable[[str], str | None]


Decide = Callable[[Item | None, Event, DecisionContext], Decision]
# Rules across fields, after each field's own (an expiry in seconds becomes a moment, a reason
# that must add stock): may change the clean values and report with the checker.
Refine = Callable[[dict[str, Any], Checker], None]


@dataclass(frozen=True)
class RecordRef:
    """The transfer or reservation a command makes or acts on. The listener loads it (and the
    levels of its locations) before deciding; the 202 names it (``reservation_id``...)."""

    kind: Literal["transfer", "reservation"]
    id_of: Callable[[Event], str]

    @property
    def key(self) -> str:
        return f"{self.kind}_id"


def no_refinement(values: dict[str, Any], check: Checker) -> None:
    return None


# The levels a command reads and writes: the listener loads only these.
Touches = Callable[[Event], tuple[str, ...]]


def at_event_location(event: Event) -> tuple[str, ...]:
    return (event.location,)


def no_levels(event: Event) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class CommandSpec:
    # The action's name: the last segment of its form URL and of its JSON URL (unless `path`).
    name: str
    event_type: EventType
    # The event's data; checked again by the listener when it decodes the event.
    data: type[msgspec.Struct]
    # The request body (JSON and form); None for a command without one.
    body: type[msgspec.Struct] | None
    # One rule per body field.
    fields: Mapping[str, FieldRule]
    decide: Decide
    role: Role
    # How the pages name it: "Reserve 2 · SKU".
    verb: str
    summary: str
    description: str = ""
    example: Mapping[str, Any] | None = None
    # A create makes a new item (POST /items, its id chosen by the server); every other command
    # names an existing item (/items/{item_id}/...).
    creates_item: bool = False
    method: Literal["POST", "PUT", "DELETE"] = "POST"
    # The JSON route below /api/v1/inventory/items; default "/{item_id}/<name>".
    path: str | None = None
    # Carried into the history as the change's note.
    note_field: str | None = None
    # The levels the decision needs loaded (a create makes its level; an edit needs none).
    touches: Touches = at_event_location
    # The body field that names the event's location (the envelope's ``location``).
    location_field: str = "location"
    refine: Refine = no_refinement
    record: RecordRef | None = None
    # A plain release: the listener loads the open anonymous reservations it may give back.
    releases_anonymous: bool = False
    # Published by the product itself (an expiry): no route, no form, no OpenAPI operation.
    internal: bool = False
    # What ``refine`` checks, as JSON Schema for the body's document (``allOf`` members), so a
    # client generated from it never sends what ``refine`` refuses.
    cross_rules: tuple[Mapping[str, Any], ...] = ()

    @property
    def json_path(self) -> str:
        if self.path is not None:
            return self.path
        return "" if self.creates_item else f"/{{item_id:str}}/{self.name}"

    @property
    def form_path(self) -> str:
        return "/items" if self.creates_item else f"/items/{{item_id:str}}/{self.name}"

    @property
    def form_fields(self) -> tuple[str, ...]:
        return tuple(self.fields)

    def check(
        self, values: Mapping[str, Any], *, item_id: str, places: Places, expected_version: int | None = None
    ) -> CommandRequest:
        """Every rule of every field, then the event data; raises InvalidCommand with each broken rule."""
        check = Checker(places)
        clean = {name: rule.clean(name, values.get(name), check) for name, rule in self.fields.items()}
        if not check.errors:
            self.refine(clean, check)
        check.raise_if_failed()
        if self.location_field == "location":
            location = clean.pop("location", None) or places.default
        else:
            location = clean.get(self.location_field) or places.default
        data_fields = set(self.data.__struct_fields__)
        data = self.data(**{name: value for name, value in clean.items() if name in data_fields})
        return CommandRequest(self.event_type, item_id, location, data, expected_version)

    def check_form(self, form: Mapping[str, str], *, item_id: str, places: Places) -> CommandRequest:
        """A form's text (pages, console): its own parsing errors (not a number) and the rules,
        reported together, one message per field."""
        values, errors = parse_form(dict(self.fields), dict(form))
        try:
            command = self.check(values, item_id=item_id, places=places)
        except InvalidCommand as exc:
            seen = {e.field for e in errors}
            raise InvalidCommand(errors + [e for e in exc.errors if e.field not in seen]) from None
        if errors:
            raise InvalidCommand(errors)
        return command

    def note(self, event: Event) -> str | None:
        if self.note_field is None:
            return None
        value = getattr(event.data, self.note_field, None)
        return value if isinstance(value, str) else None
