"""Transfer commands: move stock at once, or ship it and then receive or cancel it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import msgspec

from app.domain import ids, transfers
from app.domain.catalogue.fields import FieldRule, Location, RecordId, Text, Units
from app.domain.catalogue.spec import CommandSpec, Decide, DecisionContext, RecordRef
from app.domain.catalogue.stock import NoteField
from app.domain.events import Event, EventType, Note, Uuid
from app.domain.events import Location as LocationValue
from app.domain.events import Units as UnitsValue
from app.domain.model import MAX_COMMAND_QUANTITY, REASON_MAX, Decision, Item
from app.domain.roles import Role

FromField = Annotated[str, msgspec.Meta(description="the location the units leave")]
ToField = Annotated[str, msgspec.Meta(description="the location the units go to")]
TransferIdField = Annotated[str, msgspec.Meta(description="the transfer's id, as the ship answered it")]


class StockTransferData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Data of a one-step transfer and of a shipment."""

    quantity: UnitsValue
    from_location: LocationValue
    to_location: LocationValue
    note: Note | None = None


class TransferStock(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(description=f"units, 1-{MAX_COMMAND_QUANTITY}")]
    from_location: FromField
    to_location: ToField
    note: NoteField | None = None


class TransferReceivedData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    transfer_id: Uuid
    # None: everything shipped arrived.
    received: Annotated[int, msgspec.Meta(ge=0, le=MAX_COMMAND_QUANTITY)] | None = None
    note: Note | None = None


class ReceiveTransfer(msgspec.Struct, forbid_unknown_fields=True):
    transfer_id: TransferIdField
    received: Annotated[int, msgspec.Meta(description="units that arrived; all that were shipped if absent")] | None = (
        None
    )
    note: NoteField | None = None


class TransferCancelledData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    transfer_id: Uuid
    note: Note | None = None


class CancelTransfer(msgspec.Struct, forbid_unknown_fields=True):
    transfer_id: TransferIdField
    note: NoteField | None = None


def transfer_made(event: Event) -> str:
    return ids.transfer_id(event.command_id)


def transfer_named(event: Event) -> str:
    data = event.data
    assert isinstance(data, TransferReceivedData | TransferCancelledData)
    return data.transfer_id


def _between(event: Event) -> tuple[str, ...]:
    data = event.data
    assert isinstance(data, StockTransferData)
    return (data.from_location, data.to_location)


def _starting(start: Callable[..., Decision]) -> Decide:
    """The decision of a one-step transfer or of a shipment: the same data, another rule."""

    def decide(item: Item | None, event: Event, context: DecisionContext) -> Decision:
        data = event.data
        assert isinstance(data, StockTransferData)
        return start(
            item,
            transfer_id=transfer_made(event),
            from_location=data.from_location,
            to_location=data.to_location,
            quantity=data.quantity,
            expected_version=event.expected_version,
            now=context.now,
            note=data.note,
        )

    return decide


def _receive(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, TransferReceivedData)
    return transfers.receive_transfer(
        item,
        transfer_id=data.transfer_id,
        received=data.received,
        expected_version=event.expected_version,
        now=context.now,
        note=data.note,
    )


def _cancel(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, TransferCancelledData)
    return transfers.cancel_transfer(
        item, transfer_id=data.transfer_id, expected_version=event.expected_version, now=context.now, note=data.note
    )


MOVE_FIELDS: dict[str, FieldRule] = {
    "quantity": Units(minimum=1),
    "from_location": Location(required=True),
    "to_location": Location(required=True),
    "note": Text(REASON_MAX, blank_is_none=True),
}

TRANSFER = CommandSpec(
    name="transfer",
    event_type=EventType.STOCK_TRANSFERRED,
    data=StockTransferData,
    body=TransferStock,
    fields=MOVE_FIELDS,
    decide=_starting(transfers.transfer_stock),
    role=Role.CLERK,
    verb="Transfer",
    summary="Move stock to another location at once",
    description=(
        "One step: the units leave `from_location` and arrive at `to_location` in one change. Rejected when "
        "fewer are available at `from_location`. Answers the `transfer_id` (listed as received)."
    ),
    example={"quantity": 5, "from_location": "MAIN", "to_location": "S001"},
    note_field="note",
    touches=_between,
    location_field="from_location",
    record=RecordRef("transfer", transfer_made),
)

SHIP = CommandSpec(
    name="ship",
    event_type=EventType.TRANSFER_SHIPPED,
    data=StockTransferData,
    body=TransferStock,
    fields=MOVE_FIELDS,
    decide=_starting(transfers.ship_transfer),
    role=Role.CLERK,
    verb="Ship",
    summary="Ship stock to another location",
    description=(
        "The units leave `from_location` and are in transit (on the item, under the answered `transfer_id`) "
        "until they are received at `to_location` or the transfer is cancelled."
    ),
    example={"quantity": 10, "from_location": "MAIN", "to_location": "S001", "note": "weekly delivery"},
    note_field="note",
    touches=_between,
    location_field="from_location",
    record=RecordRef("transfer", transfer_made),
)

RECEIVE = CommandSpec(
    name="receive",
    event_type=EventType.TRANSFER_RECEIVED,
    data=TransferReceivedData,
    body=ReceiveTransfer,
    fields={
        "transfer_id": RecordId(),
        "received": Units(minimum=0, optional=True),
        "note": Text(REASON_MAX, blank_is_none=True),
    },
    decide=_receive,
    role=Role.CLERK,
    verb="Receive",
    summary="Receive a shipped transfer",
    description=(
        "The units arrive at the transfer's `to_location`. Fewer than shipped records the difference as a loss "
        "with reason `transit_loss`. Rejected for an unknown transfer, one already received or cancelled, or "
        "more than was shipped."
    ),
    example={"transfer_id": "0b6f3c1e-8d7a-5e2b-9c41-2f7a6d3e1b90", "received": 9},
    note_field="note",
    touches=lambda event: (),
    record=RecordRef("transfer", transfer_named),
)

CANCEL_TRANSFER = CommandSpec(
    name="cancel-transfer",
    event_type=EventType.TRANSFER_CANCELLED,
    data=TransferCancelledData,
    body=CancelTransfer,
    fields={"transfer_id": RecordId(), "note": Text(REASON_MAX, blank_is_none=True)},
    decide=_cancel,
    role=Role.CLERK,
    verb="Cancel transfer",
    summary="Cancel a transfer in transit",
    description="Before it is received: the units go back to the transfer's `from_location`.",
    example={"transfer_id": "0b6f3c1e-8d7a-5e2b-9c41-2f7a6d3e1b90"},
    note_field="note",
    touches=lambda event: (),
    record=RecordRef("transfer", transfer_named),
)
