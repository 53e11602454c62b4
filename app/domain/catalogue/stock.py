"""Stock commands at one location: adjust (with a reason), count, reserve, release."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec

from app.domain import ids, model, reservations
from app.domain.catalogue.fields import Change, Checker, Choice, Location, Moment, Seconds, Text, Units
from app.domain.catalogue.items import LocationField
from app.domain.catalogue.spec import CommandSpec, DecisionContext, RecordRef
from app.domain.events import Delta, Event, EventType, Note, Reason
from app.domain.events import Moment as MomentText
from app.domain.events import Units as UnitsValue
from app.domain.model import (
    CHOSEN_REASONS,
    MAX_COMMAND_QUANTITY,
    REASON_MAX,
    AdjustmentReason,
    Decision,
    Item,
)
from app.domain.reservations import MAX_HOLD_SECONDS, REFERENCE_MAX
from app.domain.roles import Role
from app.domain.rules import moment_text

NoteField = Annotated[str, msgspec.Meta(description=f"optional note, up to {REASON_MAX} characters")]

# --- adjust --------------------------------------------------------------------------------


class StockAdjustedData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    quantity: Delta
    # One of AdjustmentReason; events from before the closed list may carry free text, which
    # is read as a correction with that text as its note.
    reason: Reason | None = None
    note: Note | None = None

    def __post_init__(self) -> None:
        # Decoding checks this too: an event on the log that moves nothing is poison.
        if self.quantity == 0:
            raise ValueError("quantity must be non-zero")


class AdjustStock(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(description="signed change, non-zero; negative removes stock")]
    location: LocationField | None = None
    reason: (
        Annotated[
            str,
            msgspec.Meta(description="why: received and returned add stock; sold, damaged, lost and theft remove it"),
        ]
        | None
    ) = None
    note: NoteField | None = None


def _reason_and_note(data: StockAdjustedData) -> tuple[AdjustmentReason, str | None]:
    if data.reason is None:
        return AdjustmentReason.CORRECTION, data.note
    try:
        return AdjustmentReason(data.reason), data.note
    except ValueError:
        return AdjustmentReason.CORRECTION, "; ".join(part for part in (data.reason, data.note) if part)


def _adjust(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, StockAdjustedData)
    reason, note = _reason_and_note(data)
    return model.adjust_stock(
        item,
        location=event.location,
        delta=data.quantity,
        expected_version=event.expected_version,
        now=context.now,
        reason=reason,
        note=note,
    )


def _reason_direction(values: dict[str, Any], check: Checker) -> None:
    direction = CHOSEN_REASONS[AdjustmentReason(values["reason"])]
    if direction is not None and values["quantity"] * direction < 0:
        way = "add" if direction > 0 else "remove"
        check.fail("quantity", f"must {way} stock for reason {values['reason']!r}")


def _direction_rules() -> tuple[dict[str, Any], ...]:
    rules = []
    for direction, bound in ((1, {"minimum": 1}), (-1, {"maximum": -1})):
        reasons = [reason.value for reason, way in CHOSEN_REASONS.items() if way == direction]
        rules.append(
            {
                "if": {"properties": {"reason": {"enum": reasons}}, "required": ["reason"]},
                "then": {"properties": {"quantity": bound}},
            }
        )
    return tuple(rules)


ADJUST = CommandSpec(
    name="adjust",
    event_type=EventType.STOCK_ADJUSTED,
    data=StockAdjustedData,
    body=AdjustStock,
    fields={
        "quantity": Change(),
        "location": Location(),
        "reason": Choice(tuple(CHOSEN_REASONS), default=AdjustmentReason.CORRECTION.value),
        "note": Text(REASON_MAX, blank_is_none=True),
    },
    decide=_adjust,
    role=Role.CLERK,
    verb="Adjust",
    summary="Adjust stock by a signed amount, with a reason",
    description=(
        "Adds (received, returned) or removes (sold, damaged, lost, theft) units at one location, never below "
        "what is reserved; `correction` goes either way and is the reason when none is given."
    ),
    example={"quantity": -2, "location": "S001", "reason": "damaged", "note": "dropped in the stockroom"},
    note_field="note",
    refine=_reason_direction,
    cross_rules=_direction_rules(),
)


# --- count ---------------------------------------------------------------------------------


class StockCountedData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    counted: Annotated[int, msgspec.Meta(ge=0, le=MAX_COMMAND_QUANTITY)]
    note: Note | None = None


class CountStock(msgspec.Struct, forbid_unknown_fields=True):
    counted: Annotated[int, msgspec.Meta(description=f"units found on the shelf, 0-{MAX_COMMAND_QUANTITY}")]
    location: LocationField | None = None
    note: NoteField | None = None


def _count(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, StockCountedData)
    return model.count_stock(
        item,
        location=event.location,
        counted=data.counted,
        expected_version=event.expected_version,
        now=context.now,
        note=data.note,
    )


COUNT = CommandSpec(
    name="count",
    event_type=EventType.STOCK_COUNTED,
    data=StockCountedData,
    body=CountStock,
    fields={"counted": Units(minimum=0), "location": Location(), "note": Text(REASON_MAX, blank_is_none=True)},
    decide=_count,
    role=Role.CLERK,
    verb="Count",
    summary="Record a stock count",
    description=(
        "The counted quantity replaces the figure on hand; the difference is recorded as an adjustment with "
        "reason `count`, expected and counted side by side. Rejected (`count_below_reserved`) below what is "
        "reserved there."
    ),
    example={"counted": 37, "location": "S001"},
    note_field="note",
)


# --- reserve and release -------------------------------------------------------------------


class StockReservedData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    quantity: UnitsValue
    reference: Annotated[str, msgspec.Meta(min_length=1, max_length=REFERENCE_MAX)] | None = None
    expires_at: MomentText | None = None


class ReserveStock(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(description=f"units, 1-{MAX_COMMAND_QUANTITY}")]
    location: LocationField | None = None
    reference: (
        Annotated[str, msgspec.Meta(description="order or cart id: the same reference and item reserve once")] | None
    ) = None
    expires_in: Annotated[int, msgspec.Meta(description="seconds until the reservation expires")] | None = None
    expires_at: Annotated[str, msgspec.Meta(description="when it expires (RFC 3339); or expires_in")] | None = None


class StockMovedData(msgspec.Struct, forbid_unknown_fields=True):
    """Data of a release."""

    quantity: UnitsValue


class MoveStock(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(description=f"units, 1-{MAX_COMMAND_QUANTITY}")]
    location: LocationField | None = None


def reservation_made(event: Event) -> str:
    data = event.data
    assert isinstance(data, StockReservedData)
    return ids.reservation_id(event.item_id, event.command_id, data.reference)


def _reserve(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, StockReservedData)
    return reservations.reserve_stock(
        item,
        location=event.location,
        quantity=data.quantity,
        expected_version=event.expected_version,
        now=context.now,
        reservation_id=reservation_made(event),
        reference=data.reference,
        expires_at=data.expires_at,
        submitted_at=event.occurred_at,
    )


def _release(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, StockMovedData)
    return reservations.release_stock(
        item, location=event.location, quantity=data.quantity, expected_version=event.expected_version, now=context.now
    )


def _expiry(values: dict[str, Any], check: Checker) -> None:
    """``expires_in`` becomes a moment; given both, the earlier one holds."""
    seconds = values.pop("expires_in", None)
    if seconds is not None:
        moment = moment_text(check.now + timedelta(seconds=seconds))
        given = values.get("expires_at")
        values["expires_at"] = moment if given is None else min(given, moment)


RESERVE = CommandSpec(
    name="reserve",
    event_type=EventType.STOCK_RESERVED,
    data=StockReservedData,
    body=ReserveStock,
    fields={
        "quantity": Units(minimum=1),
        "location": Location(),
        "reference": Text(REFERENCE_MAX, blank_is_none=True),
        "expires_in": Seconds(1, MAX_HOLD_SECONDS),
        "expires_at": Moment(),
    },
    decide=_reserve,
    role=Role.CLERK,
    verb="Reserve",
    summary="Reserve stock",
    description=(
        "Holds units at one location for an order; rejected when fewer are available. Answers the new "
        "`reservation_id`. With a `reference` the same order reserves once; with `expires_in` (seconds) or "
        f"`expires_at` the units come back by themselves when it expires (given both, the earlier). An expiry in "
        f"the past or more than {MAX_HOLD_SECONDS} s ahead is rejected (`invalid`)."
    ),
    example={"quantity": 2, "location": "S001", "reference": "ORDER-1042", "expires_in": 900},
    refine=_expiry,
    record=RecordRef("reservation", reservation_made),
)

RELEASE = CommandSpec(
    name="release",
    event_type=EventType.STOCK_RELEASED,
    data=StockMovedData,
    body=MoveStock,
    fields={"quantity": Units(minimum=1), "location": Location()},
    decide=_release,
    role=Role.CLERK,
    verb="Release",
    summary="Release reserved stock",
    description=(
        "Gives units of plain reservations (no reference, no expiry) at one location back to what is "
        "available, newest first. Reservations with a reference or an expiry are cancelled by id."
    ),
    example={"quantity": 2, "location": "S001"},
    releases_anonymous=True,
)
