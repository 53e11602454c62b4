"""Moving stock between locations: at once, or shipped and then received or cancelled.

Pure, like app/domain/model.py. A transfer belongs to one item, so all of it (both levels, the
units in transit, the transfer record) changes in one decision and one transaction.
"""

from __future__ import annotations

from dataclasses import replace

from app.domain.model import (
    MAX_COMMAND_QUANTITY,
    MAX_LEVEL_QUANTITY,
    AdjustmentReason,
    Applied,
    Decision,
    Item,
    Movement,
    Reason,
    Rejected,
    Transfer,
    TransferState,
    live_item,
    moved,
    with_level,
    with_levels,
)


def _checked(
    item: Item | None, *, from_location: str, to_location: str, quantity: int, expected_version: int | None
) -> Item | Rejected:
    live = live_item(item, expected_version)
    if isinstance(live, Rejected):
        return live
    if from_location == to_location:
        return Rejected(Reason.SAME_LOCATION, f"cannot transfer from {from_location} to itself")
    if not 1 <= quantity <= MAX_COMMAND_QUANTITY:
        return Rejected(Reason.INVALID, "quantity out of range")
    available = live.level(from_location).available
    if quantity > available:
        return Rejected(
            Reason.INSUFFICIENT_STOCK,
            f"cannot transfer {quantity} from {from_location}: {available} available",
        )
    if live.level(to_location).quantity + quantity > MAX_LEVEL_QUANTITY:
        return Rejected(Reason.INVALID, f"{to_location} would exceed the maximum level")
    return live


def transfer_stock(
    item: Item | None,
    *,
    transfer_id: str,
    from_location: str,
    to_location: str,
    quantity: int,
    expected_version: int | None,
    now: str,
    note: str | None = None,
) -> Decision:
    """One step: the units leave one location and arrive at the other in the same change."""
    return _start(
        item, transfer_id=transfer_id, from_location=from_location, to_location=to_location, quantity=quantity,
        expected_version=expected_version, now=now, note=note, at_once=True,
    )  # fmt: skip


def ship_transfer(
    item: Item | None,
    *,
    transfer_id: str,
    from_location: str,
    to_location: str,
    quantity: int,
    expected_version: int | None,
    now: str,
    note: str | None = None,
) -> Decision:
    """The units leave ``from`` and are in transit until received or cancelled."""
    return _start(
        item, transfer_id=transfer_id, from_location=from_location, to_location=to_location, quantity=quantity,
        expected_version=expected_version, now=now, note=note, at_once=False,
    )  # fmt: skip


def _start(
    item: Item | None,
    *,
    transfer_id: str,
    from_location: str,
    to_location: str,
    quantity: int,
    expected_version: int | None,
    now: str,
    note: str | None,
    at_once: bool,
) -> Decision:
    live = _checked(
        item, from_location=from_location, to_location=to_location, quantity=quantity, expected_version=expected_version
    )
    if isinstance(live, Rejected):
        return live
    if transfer_id in live.transfers:
        return Rejected(Reason.INVALID, "a transfer with this id already exists")
    transfer = Transfer(
        id=transfer_id,
        item_id=live.id,
        from_location=from_location,
        to_location=to_location,
        quantity=quantity,
        state=TransferState.RECEIVED if at_once else TransferState.IN_TRANSIT,
        shipped_at=now,
        received=quantity if at_once else 0,
        closed_at=now if at_once else None,
        note=note,
    )
    source = moved(live.level(from_location), now, quantity=-quantity)
    movements = [Movement(from_location, quantity_delta=-quantity, reference=transfer_id, note=note)]
    if at_once:
        target = moved(live.level(to_location), now, quantity=quantity)
        changed = with_levels(live, (source, target), now)
        movements.append(Movement(to_location, quantity_delta=quantity, reference=transfer_id, note=note))
    else:
        changed = with_level(live, source, now, in_transit_delta=quantity)
    changed = replace(changed, transfers={**changed.transfers, transfer.id: transfer})
    return Applied(item=changed, movements=tuple(movements), transfers=(transfer,))


def _open_transfer(item: Item, transfer_id: str) -> Transfer | Rejected:
    transfer = item.transfers.get(transfer_id)
    if transfer is None or transfer.item_id != item.id:
        return Rejected(Reason.UNKNOWN_TRANSFER, f"no transfer {transfer_id} of this item")
    if not transfer.open:
        return Rejected(Reason.TRANSFER_CLOSED, f"transfer {transfer_id} is already {transfer.state.value}")
    return transfer


def receive_transfer(
    item: Item | None,
    *,
    transfer_id: str,
    received: int | None,
    expected_version: int | None,
    now: str,
    note: str | None = None,
) -> Decision:
    """The units arrive at ``to``; fewer than shipped records the shortfall as ``transit_loss``."""
    live = live_item(item, expected_version)
    if isinstance(live, Rejected):
        return live
    transfer = _open_transfer(live, transfer_id)
    if isinstance(transfer, Rejected):
        return transfer
    count = transfer.quantity if received is None else received
    if not 0 <= count <= transfer.quantity:
        return Rejected(
            Reason.OVER_RECEIPT, f"cannot receive {count}: transfer {transfer_id} shipped {transfer.quantity}"
        )
    lost = transfer.quantity - count
    if live.level(transfer.to_location).quantity + count > MAX_LEVEL_QUANTITY:
        return Rejected(Reason.INVALID, f"{transfer.to_location} would exceed the maximum level")
    target = moved(live.level(transfer.to_location), now, quantity=count)
    closed = replace(transfer, state=TransferState.RECEIVED, received=count, closed_at=now)
    changed = with_level(live, target, now, in_transit_delta=-transfer.quantity)
    changed = replace(changed, transfers={**changed.transfers, closed.id: closed})
    movement = Movement(
        transfer.to_location,
        quantity_delta=count,
        reference=transfer_id,
        reason=AdjustmentReason.TRANSIT_LOSS if lost else None,
        expected=transfer.quantity,
        note=note if not lost else f"{lost} of {transfer.quantity} lost in transit" + (f"; {note}" if note else ""),
    )
    return Applied(item=changed, movements=(movement,), transfers=(closed,))


def cancel_transfer(
    item: Item | None, *, transfer_id: str, expected_version: int | None, now: str, note: str | None = None
) -> Decision:
    """Before receipt: the units go back to ``from``."""
    live = live_item(item, expected_version)
    if isinstance(live, Rejected):
        return live
    transfer = _open_transfer(live, transfer_id)
    if isinstance(transfer, Rejected):
        return transfer
    if live.level(transfer.from_location).quantity + transfer.quantity > MAX_LEVEL_QUANTITY:
        return Rejected(Reason.INVALID, f"{transfer.from_location} would exceed the maximum level")
    source = moved(live.level(transfer.from_location), now, quantity=transfer.quantity)
    closed = replace(transfer, state=TransferState.CANCELLED, closed_at=now)
    changed = with_level(live, source, now, in_transit_delta=-transfer.quantity)
    changed = replace(changed, transfers={**changed.transfers, closed.id: closed})
    movement = Movement(transfer.from_location, quantity_delta=transfer.quantity, reference=transfer_id, note=note)
    return Applied(item=changed, movements=(movement,), transfers=(closed,))
