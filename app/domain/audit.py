"""The audit log: who did what across the chain, as pure pieces (no I/O).

An entry is either an applied change (a row of the history) or a rejected command (an outcome
the listener refused). The two come from two tables, each read newest first along its own key;
a page is the two merged by time, and the cursor keeps where each source stopped, so paging is
exact (no entry twice, none skipped) without OFFSET and however many rows there are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from app.domain import rules
from app.domain.catalogue import FieldError, InvalidCommand
from app.domain.csvtext import FORMULA_STARTS
from app.domain.events import EventType

EntryKind = Literal["applied", "rejected"]
KINDS: tuple[EntryKind, ...] = ("applied", "rejected")
ACTOR_MAX = 64
ITEM_MAX = 100
# Reasons are short snake_case words: the adjustment reasons of the history and the rejection
# reasons of the outcomes (insufficient_stock, version_conflict...).
REASON_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
EVENT_TYPES = {event.value: event.value for event in EventType} | {
    event.value.rsplit(".", 1)[-1]: event.value for event in EventType
}


class AuditEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of the audit log. ``at`` is when the listener applied (or refused) it."""

    kind: str
    at: str
    actor: str
    event_type: str
    item_id: str
    command_id: str
    # The item's SKU and name as they are now (None for an id the database never saw).
    sku: str | None = None
    name: str | None = None
    location: str | None = None
    # Applied changes: the history row, its deltas and what they left.
    id: int | None = None
    occurred_at: str | None = None
    quantity_delta: int | None = None
    reserved_delta: int | None = None
    quantity_after: int | None = None
    reserved_after: int | None = None
    version: int | None = None
    reason: str | None = None
    reference: str | None = None
    note: str | None = None
    # Rejected commands: why, in words.
    message: str | None = None


@dataclass(frozen=True)
class AuditFilters:
    """What the log is narrowed to; None: any. ``item`` is as typed (a SKU or an id) and
    ``item_id`` what it names once resolved."""

    actor: str | None = None
    item: str | None = None
    location: str | None = None
    reason: str | None = None
    event_type: str | None = None
    kind: EntryKind | None = None
    item_id: str | None = None

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links to the next page and to the export)."""
        pairs = {
            "actor": self.actor,
            "item": self.item,
            "location": self.location,
            "reason": self.reason,
            "event_type": self.event_type,
            "kind": self.kind,
        }
        return {key: value for key, value in pairs.items() if value}

    @property
    def any(self) -> bool:
        return bool(self.query())

    def admits(self, entry: AuditEntry) -> bool:
        """Whether an entry belongs to the log so narrowed (the live page asks, per new entry)."""
        return (
            (self.actor is None or entry.actor == self.actor)
            and (self.item_id is None or entry.item_id == self.item_id)
            and (self.location is None or entry.location == self.location)
            and (self.reason is None or entry.reason == self.reason)
            and (self.event_type is None or entry.event_type == self.event_type)
            and (self.kind is None or entry.kind == self.kind)
        )


def parse_filters(params: Mapping[str, str | None], locations: Sequence[str]) -> AuditFilters:
    """The filters from a query string; InvalidCommand naming each bad one. Empty values are no
    filter, so a form submitted with blank fields lists everything."""
    errors: list[FieldError] = []

    def text(name: str) -> str | None:
        return (params.get(name) or "").strip() or None

    actor = text("actor")
    if actor is not None:
        actor = actor.lower()
        if len(actor) > ACTOR_MAX:
            errors.append(FieldError("actor", f"must be at most {ACTOR_MAX} characters"))
    item = text("item")
    if item is not None and len(item) > ITEM_MAX:
        errors.append(FieldError("item", f"must be at most {ITEM_MAX} characters"))
    location = rules.normalise_location(params.get("location")) or None
    if location is not None and location not in locations:
        errors.append(FieldError("location", f"unknown location; known: {', '.join(locations)}"))
    reason = text("reason")
    if reason is not None:
        reason = reason.lower()
        if not REASON_PATTERN.match(reason):
            errors.append(FieldError("reason", "must be a reason code such as damaged or insufficient_stock"))
    event_type = text("event_type")
    if event_type is not None:
        event_type = EVENT_TYPES.get(event_type.lower())
        if event_type is None:
            errors.append(FieldError("event_type", "unknown event type, e.g. adjusted or inventory.stock.adjusted"))
    kind = text("kind")
    if kind is not None and kind.lower() not in KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(KINDS)}"))
    if errors:
        raise InvalidCommand(errors)
    return AuditFilters(
        actor=actor,
        item=item,
        location=location,
        reason=reason,
        event_type=event_type,
        kind="applied" if kind and kind.lower() == "applied" else "rejected" if kind else None,
    )


def item_reference(item: str) -> tuple[str | None, str]:
    """An item filter as typed: (the id, when it is one; else None, and the SKU to look up)."""
    return rules.normalise_uuid(item), item


# A cursor as text: "<last history id>~<last rejection's processed_at>~<its command id>", each
# part empty when that source starts from its newest entry. Every text this pattern admits is a
# cursor (the parts are only compared), so the API documents it and refuses nothing it admits.
CURSOR_PATTERN = r"^(\d{1,18})?~(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z~[0-9a-f-]{36})?$"
_CURSOR = re.compile(CURSOR_PATTERN)


@dataclass(frozen=True)
class Cursor:
    """Where the previous page stopped in each source: the last history id it showed, and the
    last rejection's (processed_at, command_id). None: that source from its newest entry."""

    history_before: int | None = None
    rejected_before: tuple[str, str] | None = None

    def encode(self) -> str:
        history = "" if self.history_before is None else str(self.history_before)
        rejected = "~".join(self.rejected_before) if self.rejected_before else ""
        return f"{history}~{rejected}"


class BadCursor(ValueError):
    pass


def decode_cursor(text: str | None) -> Cursor:
    """A cursor from a link: absent is the first page; anything not in the cursor's form is refused."""
    if not text:
        return Cursor()
    if not _CURSOR.match(text):
        raise BadCursor(text)
    history, _, rejected = text.partition("~")
    processed_at, _, command_id = rejected.partition("~")
    return Cursor(int(history) if history else None, (processed_at, command_id) if rejected else None)


def merge_page(
    applied: Sequence[AuditEntry], rejected: Sequence[AuditEntry], cursor: Cursor, limit: int
) -> tuple[list[AuditEntry], Cursor | None]:
    """Up to ``limit`` entries, newest first, from two lists each already newest first (and each
    read with at least limit + 1 rows when it has them), and the cursor of the next page (None:
    there is none). A merge of two sorted lists takes a prefix of each, so the next page starts
    exactly after what this one showed in each source."""
    page: list[AuditEntry] = []
    a = r = 0
    while len(page) < limit and (a < len(applied) or r < len(rejected)):
        take_applied = r >= len(rejected) or (a < len(applied) and applied[a].at >= rejected[r].at)
        if take_applied:
            page.append(applied[a])
            a += 1
        else:
            page.append(rejected[r])
            r += 1
    if a >= len(applied) and r >= len(rejected):
        return page, None
    history_before = applied[a - 1].id if a else cursor.history_before
    rejected_before = (rejected[r - 1].at, rejected[r - 1].command_id) if r else cursor.rejected_before
    return page, Cursor(history_before, rejected_before)


def csv_cell(value: object) -> str | int:
    """A value as a CSV cell that a spreadsheet will not run: text starting with a formula
    character gets a leading apostrophe (numbers stay numbers: -3 is a delta, not a formula)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


CSV_COLUMNS = (
    "at", "kind", "actor", "event_type", "sku", "name", "item_id", "location", "quantity_delta", "reserved_delta",
    "quantity_after", "reserved_after", "reason", "reference", "note", "message", "version", "occurred_at",
    "command_id",
)  # fmt: skip


def csv_row(entry: AuditEntry) -> list[str | int]:
    return [csv_cell(getattr(entry, column)) for column in CSV_COLUMNS]
