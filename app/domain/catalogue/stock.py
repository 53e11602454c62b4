"""Stock commands at one location: adjust, reserve, release."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.domain import model
from app.domain.catalogue.fields import Change, FieldRule, Location, Text, Units
from app.domain.catalogue.items import LocationField
from app.domain.catalogue.spec import CommandSpec, DecisionContext
from app.domain.events import Delta, Event, EventType, Reason
from app.domain.events import Units as UnitsValue
from app.domain.model import MAX_COMMAND_QUANTITY, REASON_MAX, Decision, Item
from app.domain.roles import Role

# --- adjust --------------------------------------------------------------------------------


class StockAdjustedData(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Delta
    reason: Reason | None = None

    def __post_init__(self) -> None:
        # Decoding checks this too: an event on the log that moves nothing is poison.
        if self.quantity == 0:
            raise ValueError("quantity must be non-zero")


class AdjustStock(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(description="signed change, non-zero; negative removes stock")]
    location: LocationField | None = None
    reason: Annotated[str, msgspec.Meta(description=f"why, up to {REASON_MAX} characters")] | None = None


def _adjust(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, StockAdjustedData)
    return model.adjust_stock(
        item, location=event.location, delta=data.quantity, expected_version=event.expected_version, now=context.now
    )


ADJUST = CommandSpec(
    name="adjust",
    event_type=EventType.STOCK_ADJUSTED,
    data=StockAdjustedData,
    body=AdjustStock,
    fields={"quantity": Change(), "location": Location(), "reason": Text(REASON_MAX, blank_is_none=True)},
    decide=_adjust,
    role=Role.CLERK,
    verb="Adjust",
    summary="Adjust stock by a signed amount",
    description="Adds (delivery, return) or removes (sale, loss) units at one location; never below what is reserved.",
    example={"quantity": -2, "location": "S001", "reason": "damaged"},
    note_field="reason",
)


# --- reserve and release -------------------------------------------------------------------


class StockMovedData(msgspec.Struct, forbid_unknown_fields=True):
    """Data of a reserve or a release."""

    quantity: UnitsValue


class MoveStock(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(description=f"units, 1-{MAX_COMMAND_QUANTITY}")]
    location: LocationField | None = None


def _reserve(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, StockMovedData)
    return model.reserve_stock(
        item, location=event.location, quantity=data.quantity, expected_version=event.expected_version, now=context.now
    )


def _release(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, StockMovedData)
    return model.release_stock(
        item, location=event.location, quantity=data.quantity, expected_version=event.expected_version, now=context.now
    )


MOVE_FIELDS: dict[str, FieldRule] = {"quantity": Units(minimum=1), "location": Location()}

RESERVE = CommandSpec(
    name="reserve",
    event_type=EventType.STOCK_RESERVED,
    data=StockMovedData,
    body=MoveStock,
    fields=MOVE_FIELDS,
    decide=_reserve,
    role=Role.CLERK,
    verb="Reserve",
    summary="Reserve stock",
    description="Holds units at one location for an order; rejected when fewer are available.",
    example={"quantity": 2, "location": "S001"},
)

RELEASE = CommandSpec(
    name="release",
    event_type=EventType.STOCK_RELEASED,
    data=StockMovedData,
    body=MoveStock,
    fields=MOVE_FIELDS,
    decide=_release,
    role=Role.CLERK,
    verb="Release",
    summary="Release reserved stock",
    description="Gives reserved units back to what is available at one location.",
    example={"quantity": 2, "location": "S001"},
)
