"""A store's day on the pure domain: transfers, counts, reasons for adjustments and reservations,
each decision and each rejection with its reason, and the catalogue's checks of what people send."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from app.domain import ids, model, reservations, transfers
from app.domain.catalogue import InvalidCommand, Places
from app.domain.catalogue.reservations import (
    CANCEL_RESERVATION,
    COMMIT_RESERVATION,
    EXPIRE_RESERVATION,
    ReservationData,
)
from app.domain.catalogue.spec import CommandSpec, DecisionContext
from app.domain.catalogue.stock import ADJUST, COUNT, RELEASE, RESERVE, StockAdjustedData, StockReservedData
from app.domain.catalogue.transfers import CANCEL_TRANSFER, RECEIVE, SHIP, TRANSFER, StockTransferData
from app.domain.events import Event, EventType
from app.domain.model import (
    CHOSEN_REASONS,
    AdjustmentReason,
    Applied,
    Decision,
    Item,
    Movement,
    Reason,
    Rejected,
    Reservation,
    ReservationState,
    StockLevel,
    TransferState,
)
from app.domain.reservations import MAX_HOLD_SECONDS, REFERENCE_MAX
from app.domain.rules import moment_text
from app.listener.planner import Loaded, Planner

NOW = "2026-01-01T00:00:00.000Z"
LATER = "2026-01-01T00:10:00.000Z"
EXPIRES = "2026-01-01T00:05:00.000Z"
BEFORE_EXPIRY = "2026-01-01T00:04:59.999Z"
ITEM_ID = "6f9619ff-8b86-d011-b42d-00c04fc964fe"
T1 = "0b6f3c1e-8d7a-5e2b-9c41-2f7a6d3e1b90"
T2 = "0b6f3c1e-8d7a-5e2b-9c41-2f7a6d3e1b91"
PLACES = Places(("MAIN", "S001", "S002"), "MAIN")


def make_item(stock: dict[str, int] | None = None, *, reserved: dict[str, int] | None = None) -> Item:
    stock = {"MAIN": 10, "S001": 0} if stock is None else stock
    reserved = reserved or {}
    levels = {loc: StockLevel(loc, qty, reserved.get(loc, 0), 1, NOW) for loc, qty in stock.items()}
    return Item(ITEM_ID, "SKU-1", "Thing", "", 1, NOW, NOW, None, levels)


def ok(decision: Decision) -> Applied:
    assert isinstance(decision, Applied), decision
    return decision


def no(decision: Decision) -> Rejected:
    assert isinstance(decision, Rejected), decision
    return decision


def on_hand(item: Item) -> dict[str, int]:
    return {loc: level.quantity for loc, level in item.levels.items()}


def event(event_type: EventType, data: msgspec.Struct, *, location: str = "MAIN", occurred_at: str = NOW) -> Event:
    return Event(
        event_id=str(uuid.uuid4()), event_type=event_type, item_id=ITEM_ID, location=location,
        command_id=str(uuid.uuid4()), request_id="r", actor="clerk", occurred_at=occurred_at, data=data,
    )  # fmt: skip


def context() -> DecisionContext:
    return DecisionContext(now=NOW, sku_owner=lambda sku: None)


# --- transfers ---------------------------------------------------------------------------------


def transfer(item: Item | None, quantity: int, frm: str = "MAIN", to: str = "S001", tid: str = T1) -> Decision:
    return transfers.transfer_stock(
        item, transfer_id=tid, from_location=frm, to_location=to, quantity=quantity, expected_version=None, now=NOW
    )


def ship(item: Item, quantity: int, frm: str = "MAIN", to: str = "S001", tid: str = T1) -> Decision:
    return transfers.ship_transfer(
        item, transfer_id=tid, from_location=frm, to_location=to, quantity=quantity, expected_version=None, now=NOW
    )


def receive(item: Item | None, received: int | None = None, tid: str = T1, note: str | None = None) -> Decision:
    return transfers.receive_transfer(
        item, transfer_id=tid, received=received, expected_version=None, now=LATER, note=note
    )


def cancel(item: Item, tid: str = T1) -> Decision:
    return transfers.cancel_transfer(item, transfer_id=tid, expected_version=None, now=LATER)


def test_a_transfer_to_the_same_location_is_same_location() -> None:
    assert no(transfer(make_item(), 1, "MAIN", "MAIN")).reason is Reason.SAME_LOCATION
    assert no(ship(make_item(), 1, "S001", "S001")).reason is Reason.SAME_LOCATION


def test_a_transfer_of_more_than_is_available_is_insufficient_stock() -> None:
    # 10 on hand but 4 reserved: only 6 may leave.
    item = make_item({"MAIN": 10, "S001": 0}, reserved={"MAIN": 4})
    assert no(transfer(item, 7)).reason is Reason.INSUFFICIENT_STOCK
    assert no(ship(item, 7)).reason is Reason.INSUFFICIENT_STOCK
    assert no(transfer(item, 1, "S002", "MAIN")).reason is Reason.INSUFFICIENT_STOCK  # no level there at all
    ok(transfer(item, 6))


@pytest.mark.parametrize("quantity", [0, -1, model.MAX_COMMAND_QUANTITY + 1])
def test_a_transfer_of_a_quantity_out_of_range_is_invalid(quantity: int) -> None:
    assert no(transfer(make_item(), quantity)).reason is Reason.INVALID
    assert no(ship(make_item(), quantity)).reason is Reason.INVALID


def test_a_one_step_transfer_moves_both_levels_and_the_totals_stay_equal() -> None:
    item = make_item({"MAIN": 10, "S001": 2})
    done = ok(transfer(item, 4))
    after = done.item
    assert on_hand(after) == {"MAIN": 6, "S001": 6}
    assert (after.quantity, after.reserved, after.in_transit) == (item.quantity, item.reserved, 0) == (12, 0, 0)
    assert after.version == item.version + 1  # one change, however many levels
    assert after.levels["MAIN"].version == 2 and after.levels["S001"].version == 2
    assert done.movements == (
        Movement("MAIN", quantity_delta=-4, reference=T1),
        Movement("S001", quantity_delta=4, reference=T1),
    )
    (record,) = done.transfers
    assert record.state is TransferState.RECEIVED and record.received == 4 and record.closed_at == NOW
    assert after.transfers == {T1: record}
    # Born received: nothing left to receive or cancel.
    assert no(receive(after)).reason is Reason.TRANSFER_CLOSED
    assert no(cancel(after)).reason is Reason.TRANSFER_CLOSED


def test_ship_puts_the_units_in_transit_under_an_in_transit_transfer() -> None:
    item = make_item({"MAIN": 10, "S001": 0})
    done = ok(ship(item, 3))
    after = done.item
    assert on_hand(after) == {"MAIN": 7, "S001": 0}
    assert after.in_transit == 3
    assert after.quantity == 7 and after.quantity + after.in_transit == item.quantity
    (record,) = done.transfers
    assert (record.id, record.from_location, record.to_location, record.quantity) == (T1, "MAIN", "S001", 3)
    assert record.state is TransferState.IN_TRANSIT and record.open and record.received == 0
    assert record.closed_at is None
    assert after.transfers[T1] == record
    assert done.movements == (Movement("MAIN", quantity_delta=-3, reference=T1),)


def test_shipping_under_an_id_already_used_is_invalid() -> None:
    shipped = ok(ship(make_item(), 3)).item
    assert no(ship(shipped, 1)).reason is Reason.INVALID


def test_receiving_all_that_was_shipped_closes_the_transfer() -> None:
    shipped = ok(ship(make_item(), 3)).item
    for received in (None, 3):  # absent means everything arrived
        done = ok(receive(shipped, received))
        after = done.item
        assert on_hand(after) == {"MAIN": 7, "S001": 3} and after.in_transit == 0
        assert after.quantity == 10
        (record,) = done.transfers
        assert record.state is TransferState.RECEIVED and record.received == 3 and record.closed_at == LATER
        assert done.movements == (Movement("S001", quantity_delta=3, reference=T1, expected=3),)


def test_a_short_receipt_records_the_shortfall_as_transit_loss() -> None:
    shipped = ok(ship(make_item(), 5)).item
    done = ok(receive(shipped, 3, note="box crushed"))
    after = done.item
    assert on_hand(after) == {"MAIN": 5, "S001": 3} and after.in_transit == 0
    assert after.quantity == 8  # two units lost
    (movement,) = done.movements
    assert movement.reason is AdjustmentReason.TRANSIT_LOSS
    assert (movement.location, movement.quantity_delta, movement.expected) == ("S001", 3, 5)
    assert movement.note is not None and "2 of 5 lost in transit" in movement.note and "box crushed" in movement.note
    assert done.transfers[0].received == 3 and done.transfers[0].state is TransferState.RECEIVED


def test_receiving_nothing_loses_everything_shipped() -> None:
    shipped = ok(ship(make_item(), 5)).item
    done = ok(receive(shipped, 0))
    assert on_hand(done.item) == {"MAIN": 5, "S001": 0} and done.item.in_transit == 0
    assert done.movements[0].reason is AdjustmentReason.TRANSIT_LOSS and done.movements[0].expected == 5


def test_receiving_more_than_was_shipped_is_over_receipt() -> None:
    shipped = ok(ship(make_item(), 5)).item
    rejection = no(receive(shipped, 6))
    assert rejection.reason is Reason.OVER_RECEIPT and "5" in rejection.message


def test_a_closed_transfer_cannot_be_received_or_cancelled_again() -> None:
    shipped = ok(ship(make_item(), 5)).item
    received = ok(receive(shipped)).item
    assert no(receive(received)).reason is Reason.TRANSFER_CLOSED
    assert no(cancel(received)).reason is Reason.TRANSFER_CLOSED
    cancelled = ok(cancel(shipped)).item
    assert no(cancel(cancelled)).reason is Reason.TRANSFER_CLOSED
    assert no(receive(cancelled)).reason is Reason.TRANSFER_CLOSED


def test_an_unknown_transfer_id_is_unknown_transfer() -> None:
    shipped = ok(ship(make_item(), 5)).item
    assert no(receive(shipped, tid=T2)).reason is Reason.UNKNOWN_TRANSFER
    assert no(cancel(shipped, tid=T2)).reason is Reason.UNKNOWN_TRANSFER
    assert no(receive(make_item())).reason is Reason.UNKNOWN_TRANSFER


def test_cancelling_a_shipment_returns_the_units_to_where_they_left() -> None:
    item = make_item({"MAIN": 10, "S001": 1})
    shipped = ok(ship(item, 4)).item
    done = ok(cancel(shipped))
    after = done.item
    assert on_hand(after) == on_hand(item) and after.in_transit == 0 and after.quantity == item.quantity
    (record,) = done.transfers
    assert record.state is TransferState.CANCELLED and record.closed_at == LATER and record.received == 0
    assert done.movements == (Movement("MAIN", quantity_delta=4, reference=T1),)


def test_a_cancelled_shipment_cannot_take_its_source_past_the_maximum_level() -> None:
    # Receiving checks the maximum level at its destination; a cancel returns units to the source,
    # which may have been filled up while they were on the road.
    shipped = ok(ship(make_item({"MAIN": model.MAX_LEVEL_QUANTITY}), 5)).item
    refilled = ok(model.adjust_stock(shipped, location="MAIN", delta=5, expected_version=None, now=NOW)).item
    assert no(cancel(refilled)).reason is Reason.INVALID


def test_transfers_on_a_missing_item_are_unknown_item() -> None:
    assert no(transfer(None, 1)).reason is Reason.UNKNOWN_ITEM
    assert no(receive(None)).reason is Reason.UNKNOWN_ITEM


# --- counts ------------------------------------------------------------------------------------


def count(item: Item, counted: int, location: str = "MAIN", note: str | None = None) -> Decision:
    return model.count_stock(item, location=location, counted=counted, expected_version=None, now=NOW, note=note)


@pytest.mark.parametrize("counted", [0, 7, 10, 25])
def test_a_count_replaces_the_figure_and_records_reason_count_with_what_was_expected(counted: int) -> None:
    item = make_item({"MAIN": 10})
    done = ok(count(item, counted, note="cycle count"))
    assert done.item.levels["MAIN"].quantity == counted and done.item.quantity == counted
    assert done.item.version == 2 and done.item.levels["MAIN"].version == 2
    assert done.movements == (
        Movement("MAIN", quantity_delta=counted - 10, reason=AdjustmentReason.COUNT, expected=10, note="cycle count"),
    )


def test_a_count_where_nothing_was_recorded_expects_zero() -> None:
    done = ok(count(make_item({"MAIN": 10}), 4, location="S002"))
    assert done.movements[0].expected == 0 and done.movements[0].quantity_delta == 4
    assert done.item.quantity == 14


def test_a_count_below_what_is_reserved_is_rejected_as_reservations_that_cannot_be_honoured() -> None:
    item = make_item({"MAIN": 10}, reserved={"MAIN": 6})
    rejection = no(count(item, 5))
    assert rejection.reason is Reason.COUNT_BELOW_RESERVED
    assert "reservations could not be honoured" in rejection.message
    assert "5" in rejection.message and "6" in rejection.message
    assert ok(count(item, 6)).item.levels["MAIN"].available == 0


def test_a_negative_count_is_invalid() -> None:
    assert no(count(make_item(), -1)).reason is Reason.INVALID


# --- adjustments and their reasons -------------------------------------------------------------


def test_the_people_choose_every_reason_but_count_and_transit_loss() -> None:
    assert set(CHOSEN_REASONS) == set(AdjustmentReason) - {AdjustmentReason.COUNT, AdjustmentReason.TRANSIT_LOSS}


@pytest.mark.parametrize("reason", list(CHOSEN_REASONS))
def test_an_adjustment_records_its_reason_and_note(reason: AdjustmentReason) -> None:
    delta = CHOSEN_REASONS[reason] or -1
    done = ok(
        model.adjust_stock(
            make_item(), location="MAIN", delta=delta, expected_version=None, now=NOW, reason=reason, note="n"
        )
    )
    assert done.movements == (Movement("MAIN", quantity_delta=delta, reason=reason, note="n"),)
    assert done.item.quantity == 10 + delta


def test_an_adjustment_without_a_reason_is_a_correction() -> None:
    done = ok(model.adjust_stock(make_item(), location="MAIN", delta=2, expected_version=None, now=NOW))
    assert done.movements[0].reason is AdjustmentReason.CORRECTION


@pytest.mark.parametrize(
    ("reason", "note", "expected_reason", "expected_note"),
    [
        ("damaged", "dropped", AdjustmentReason.DAMAGED, "dropped"),
        (None, "no reason given", AdjustmentReason.CORRECTION, "no reason given"),
        (None, None, AdjustmentReason.CORRECTION, None),
        # An event from before the closed list: its free text is the note of a correction.
        ("found behind the shelf", None, AdjustmentReason.CORRECTION, "found behind the shelf"),
        ("found behind the shelf", "by Ann", AdjustmentReason.CORRECTION, "found behind the shelf; by Ann"),
    ],
)
def test_the_adjust_decision_reads_the_reason_of_an_event(
    reason: str | None, note: str | None, expected_reason: AdjustmentReason, expected_note: str | None
) -> None:
    data = StockAdjustedData(quantity=-1, reason=reason, note=note)
    done = ok(ADJUST.decide(make_item(), event(EventType.STOCK_ADJUSTED, data), context()))
    assert done.movements == (Movement("MAIN", quantity_delta=-1, reason=expected_reason, note=expected_note),)


# --- reservations ------------------------------------------------------------------------------


def reserve(
    item: Item,
    quantity: int,
    *,
    rid: str = "r1",
    location: str = "MAIN",
    reference: str | None = None,
    expires_at: str | None = None,
) -> Decision:
    return reservations.reserve_stock(
        item,
        location=location,
        quantity=quantity,
        expected_version=None,
        now=NOW,
        reservation_id=rid,
        reference=reference,
        expires_at=expires_at,
    )


def release(item: Item, quantity: int, location: str = "MAIN") -> Decision:
    return reservations.release_stock(item, location=location, quantity=quantity, expected_version=None, now=LATER)


def commit(item: Item, rid: str = "r1", submitted_at: str = NOW) -> Decision:
    return reservations.commit_reservation(
        item, reservation_id=rid, expected_version=None, submitted_at=submitted_at, now=LATER
    )


def cancel_reservation(item: Item, rid: str = "r1") -> Decision:
    return reservations.cancel_reservation(item, reservation_id=rid, expected_version=None, now=LATER)


def expire(item: Item, rid: str = "r1", due_at: str = EXPIRES) -> Decision:
    return reservations.expire_reservation(item, reservation_id=rid, due_at=due_at, now=LATER)


def test_a_reserve_makes_a_reservation_record() -> None:
    done = ok(reserve(make_item(), 4, reference="ORDER-1", expires_at=EXPIRES))
    (record,) = done.reservations
    assert record == Reservation(
        id="r1", item_id=ITEM_ID, location="MAIN", quantity=4, reserved=4, state=ReservationState.OPEN,
        created_at=NOW, reference="ORDER-1", expires_at=EXPIRES,
    )  # fmt: skip
    assert done.item.reservations == {"r1": record}
    assert done.item.levels["MAIN"].reserved == 4 and done.item.reserved == 4 and done.item.quantity == 10
    assert done.movements == (Movement("MAIN", reserved_delta=4, reference="r1"),)
    assert done.changed
    assert not record.anonymous and ok(reserve(make_item(), 1)).reservations[0].anonymous


def test_one_reference_of_one_item_is_one_reservation_id() -> None:
    one = ids.reservation_id(ITEM_ID, str(uuid.uuid4()), "ORDER-1")
    assert one == ids.reservation_id(ITEM_ID, str(uuid.uuid4()), "ORDER-1")
    assert one != ids.reservation_id(ITEM_ID, str(uuid.uuid4()), "ORDER-2")
    assert one != ids.reservation_id(str(uuid.uuid4()), str(uuid.uuid4()), "ORDER-1")
    command = str(uuid.uuid4())
    assert ids.reservation_id(ITEM_ID, command, None) != ids.reservation_id(ITEM_ID, str(uuid.uuid4()), None)
    assert ids.reservation_id(ITEM_ID, command, None) == ids.reservation_id(ITEM_ID, command, None)


def test_the_same_reference_reserves_once() -> None:
    rid = ids.reservation_id(ITEM_ID, str(uuid.uuid4()), "ORDER-1")
    first = ok(reserve(make_item(), 4, rid=rid, reference="ORDER-1")).item
    again = ok(reserve(first, 4, rid=ids.reservation_id(ITEM_ID, str(uuid.uuid4()), "ORDER-1"), reference="ORDER-1"))
    assert not again.changed
    assert again.item == first and again.movements == () and again.reservations == ()
    assert again.item.levels["MAIN"].reserved == 4


def test_the_reference_of_a_closed_reservation_is_used_up() -> None:
    """Saying "applied" again would claim units that nobody holds any more."""
    rid = ids.reservation_id(ITEM_ID, str(uuid.uuid4()), "ORDER-1")
    held = ok(reserve(make_item(), 4, rid=rid, reference="ORDER-1")).item
    closed = ok(cancel_reservation(held, rid)).item
    rejection = no(reserve(closed, 4, rid=rid, reference="ORDER-1"))
    assert rejection.reason is Reason.RESERVATION_CLOSED and "new reference" in rejection.message


@pytest.mark.parametrize(("quantity", "location"), [(5, "MAIN"), (4, "S001")])
def test_the_same_reference_with_a_different_reserve_is_rejected(quantity: int, location: str) -> None:
    item = make_item({"MAIN": 10, "S001": 10})
    first = ok(reserve(item, 4, reference="ORDER-1")).item
    rejection = no(reserve(first, quantity, location=location, reference="ORDER-1"))
    assert rejection.reason is Reason.INVALID and "ORDER-1" in rejection.message


def test_reserve_of_more_than_available_or_of_nothing_is_rejected() -> None:
    item = make_item({"MAIN": 10}, reserved={"MAIN": 8})
    assert no(reserve(item, 3)).reason is Reason.INSUFFICIENT_STOCK
    assert no(reserve(item, 0)).reason is Reason.INVALID
    assert no(reserve(item, -1)).reason is Reason.INVALID


def test_a_release_gives_back_the_newest_anonymous_reservations_first_and_splits_one() -> None:
    item = ok(reserve(make_item(), 2, rid="old")).item
    item = ok(reserve(item, 3, rid="new")).item
    done = ok(release(item, 4))
    assert done.item.levels["MAIN"].reserved == 1 and done.item.reserved == 1
    assert done.movements == (Movement("MAIN", reserved_delta=-4),)
    new, old = done.reservations
    assert (new.id, new.state, new.quantity, new.reserved, new.closed_at) == (
        "new", ReservationState.RELEASED, 0, 3, LATER
    )  # fmt: skip
    assert (old.id, old.state, old.quantity, old.reserved, old.closed_at) == ("old", ReservationState.OPEN, 1, 2, None)
    assert done.item.reservations == {"old": old, "new": new}


def test_stored_reservations_are_released_by_the_order_they_were_stored_in() -> None:
    def stored(rid: str, seq: int) -> Reservation:
        return Reservation(rid, ITEM_ID, "MAIN", 1, 1, ReservationState.OPEN, NOW, seq=seq)

    loaded = Item(
        ITEM_ID, "SKU-1", "Thing", "", 1, NOW, NOW, None, {"MAIN": StockLevel("MAIN", 10, 3, 1, NOW)},
        reservations={"b": stored("b", 9), "a": stored("a", 2), "c": stored("c", 5)},
    )  # fmt: skip
    made = ok(reserve(loaded, 1, rid="fresh")).item
    assert [r.id for r in ok(release(made, 1)).reservations] == ["fresh"]
    assert [r.id for r in ok(release(made, 3)).reservations] == ["fresh", "b", "c"]
    assert [r.id for r in ok(release(loaded, 1)).reservations] == ["b"]


def test_a_release_cannot_take_units_held_by_reference_or_expiry() -> None:
    item = ok(reserve(make_item(), 2, rid="plain")).item
    item = ok(reserve(item, 3, rid="order", reference="ORDER-1")).item
    item = ok(reserve(item, 1, rid="cart", expires_at=EXPIRES)).item
    assert item.levels["MAIN"].reserved == 6
    rejection = no(release(item, 3))
    assert rejection.reason is Reason.OVER_RELEASE
    assert "only 2" in rejection.message and "4 more are held by reservations with a reference or expiry" in (
        rejection.message
    )
    done = ok(release(item, 2))
    assert done.item.levels["MAIN"].reserved == 4
    assert done.item.reservations["order"].open and done.item.reservations["cart"].open
    assert no(release(make_item(), 1, location="S001")).reason is Reason.OVER_RELEASE


def test_a_commit_sells_the_units_on_hand_and_reserved_both_drop() -> None:
    item = ok(reserve(make_item(), 4, reference="ORDER-1", expires_at=EXPIRES)).item
    done = ok(commit(item, submitted_at=BEFORE_EXPIRY))
    after = done.item
    level = after.levels["MAIN"]
    assert (level.quantity, level.reserved, after.quantity, after.reserved) == (6, 0, 6, 0)
    assert done.movements == (Movement("MAIN", quantity_delta=-4, reserved_delta=-4, reference="r1"),)
    (record,) = done.reservations
    assert record.state is ReservationState.COMMITTED and record.closed_at == LATER and record.quantity == 4
    assert after.reservations["r1"] == record


def test_a_partly_released_reservation_commits_what_it_still_holds() -> None:
    item = ok(reserve(make_item(), 4)).item
    item = ok(release(item, 1)).item
    done = ok(commit(item))
    assert done.item.levels["MAIN"].quantity == 7 and done.item.levels["MAIN"].reserved == 0
    assert done.movements[0].quantity_delta == -3


@pytest.mark.parametrize("submitted_at", [EXPIRES, LATER])
def test_a_commit_submitted_at_or_after_the_expiry_is_reservation_expired(submitted_at: str) -> None:
    item = ok(reserve(make_item(), 4, expires_at=EXPIRES)).item
    rejection = no(commit(item, submitted_at=submitted_at))
    assert rejection.reason is Reason.RESERVATION_EXPIRED and EXPIRES in rejection.message


def test_cancelling_a_reservation_makes_its_units_available_again() -> None:
    item = ok(reserve(make_item(), 4, reference="ORDER-1")).item
    done = ok(cancel_reservation(item))
    level = done.item.levels["MAIN"]
    assert (level.quantity, level.reserved, level.available) == (10, 0, 10)
    assert done.reservations[0].state is ReservationState.CANCELLED
    assert done.movements == (Movement("MAIN", reserved_delta=-4, reference="r1"),)


@pytest.mark.parametrize(
    ("expires_at", "close"),
    [
        (None, lambda item: commit(item)),
        (None, lambda item: cancel_reservation(item)),
        (EXPIRES, lambda item: expire(item)),
        (None, lambda item: release(item, 4)),
    ],
    ids=["committed", "cancelled", "expired", "released"],
)
def test_a_closed_reservation_cannot_be_committed_cancelled_or_expired(expires_at: str | None, close: Any) -> None:
    item = ok(reserve(make_item(), 4, expires_at=expires_at)).item
    closed = ok(close(item)).item
    assert not closed.reservations["r1"].open
    assert no(commit(closed)).reason is Reason.RESERVATION_CLOSED
    assert no(cancel_reservation(closed)).reason is Reason.RESERVATION_CLOSED
    assert no(expire(closed)).reason is Reason.RESERVATION_CLOSED


def test_an_unknown_reservation_id_is_unknown_reservation() -> None:
    item = ok(reserve(make_item(), 4)).item
    assert no(commit(item, rid="other")).reason is Reason.UNKNOWN_RESERVATION
    assert no(cancel_reservation(item, rid="other")).reason is Reason.UNKNOWN_RESERVATION
    assert no(expire(item, rid="other")).reason is Reason.UNKNOWN_RESERVATION


def test_an_expiry_applies_to_an_open_reservation_once_it_is_due() -> None:
    item = ok(reserve(make_item(), 4, reference="CART-9", expires_at=EXPIRES)).item
    assert no(expire(item, due_at=BEFORE_EXPIRY)).reason is Reason.NOT_DUE
    for due_at in (EXPIRES, LATER):
        done = ok(expire(item, due_at=due_at))
        level = done.item.levels["MAIN"]
        assert (level.quantity, level.reserved) == (10, 0)
        assert done.reservations[0].state is ReservationState.EXPIRED
        assert done.movements == (Movement("MAIN", reserved_delta=-4, reference="r1"),)
        assert no(expire(done.item, due_at=due_at)).reason is Reason.RESERVATION_CLOSED


def test_a_reservation_without_an_expiry_is_never_due() -> None:
    item = ok(reserve(make_item(), 4, reference="ORDER-1")).item
    assert no(expire(item, due_at="9999-12-31T23:59:59.999Z")).reason is Reason.NOT_DUE


def test_exactly_one_of_a_commit_and_an_expiry_wins_in_either_order() -> None:
    item = ok(reserve(make_item(), 4, expires_at=EXPIRES)).item
    # The commit first (submitted in time), then the expiry: the expiry finds it closed.
    committed = ok(commit(item, submitted_at=BEFORE_EXPIRY)).item
    assert no(expire(committed)).reason is Reason.RESERVATION_CLOSED
    assert committed.levels["MAIN"].quantity == 6
    # The expiry first, then the commit: the commit finds it closed.
    expired = ok(expire(item)).item
    assert no(commit(expired, submitted_at=BEFORE_EXPIRY)).reason is Reason.RESERVATION_CLOSED
    assert expired.levels["MAIN"].quantity == 10


# --- through the catalogue and the planner -----------------------------------------------------


def test_a_decided_reserve_takes_its_id_from_the_item_and_the_reference() -> None:
    data = StockReservedData(quantity=2, reference="ORDER-7", expires_at=EXPIRES)
    done = ok(RESERVE.decide(make_item(), event(EventType.STOCK_RESERVED, data), context()))
    (record,) = done.reservations
    assert record.id == ids.reservation_id(ITEM_ID, "any", "ORDER-7")
    assert (record.reference, record.expires_at) == ("ORDER-7", EXPIRES)
    again = ok(RESERVE.decide(done.item, event(EventType.STOCK_RESERVED, data), context()))
    assert not again.changed


def test_a_decided_commit_is_too_late_when_its_event_was_submitted_after_the_expiry() -> None:
    item = ok(reserve(make_item(), 2, expires_at=EXPIRES)).item
    late = event(EventType.RESERVATION_COMMITTED, ReservationData("r1"), occurred_at=EXPIRES)
    assert no(COMMIT_RESERVATION.decide(item, late, context())).reason is Reason.RESERVATION_EXPIRED
    due = event(EventType.RESERVATION_EXPIRED, ReservationData("r1"), occurred_at=BEFORE_EXPIRY)
    assert no(EXPIRE_RESERVATION.decide(item, due, context())).reason is Reason.NOT_DUE


def test_the_planner_writes_one_history_row_per_movement_and_the_records() -> None:
    item = make_item({"MAIN": 10, "S001": 0})
    planner = Planner(Loaded(items={ITEM_ID: item}), now=NOW, now_epoch=1000.0, orphan_wait=5.0)
    moved = event(EventType.STOCK_TRANSFERRED, StockTransferData(quantity=4, from_location="MAIN", to_location="S001"))
    planner.apply(moved, b"")
    shipped = event(EventType.TRANSFER_SHIPPED, StockTransferData(quantity=3, from_location="MAIN", to_location="S001"))
    planner.apply(shipped, b"")
    plan = planner.plan
    one_step, in_transit = ids.transfer_id(moved.command_id), ids.transfer_id(shipped.command_id)
    assert [(row.location, row.quantity_delta, row.reference) for row in plan.history] == [
        ("MAIN", -4, one_step),
        ("S001", 4, one_step),
        ("MAIN", -3, in_transit),
    ]
    assert [row.quantity_after for row in plan.history] == [6, 4, 3]
    assert plan.transfers[one_step].state is TransferState.RECEIVED
    assert plan.transfers[in_transit].state is TransferState.IN_TRANSIT
    (change,) = plan.item_changes()
    assert change.item is not None and change.item.in_transit == 3 and change.item.quantity == 7
    assert {t.id for t in change.transfers} == {one_step, in_transit}
    assert [o.status for o in plan.outcomes] == ["applied", "applied"]


# --- what people send: spec.check ----------------------------------------------------------------


def fields_of(spec: CommandSpec, values: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidCommand) as caught:
        spec.check(values, item_id=ITEM_ID, places=PLACES)
    return {error.field: error.message for error in caught.value.errors}


def ahead(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


MOVE = {"from_location": "MAIN", "to_location": "S001"}


@pytest.mark.parametrize("spec", [TRANSFER, SHIP], ids=lambda spec: spec.name)
@pytest.mark.parametrize("quantity", [0, -3, model.MAX_COMMAND_QUANTITY + 1])
def test_a_transfer_or_shipment_of_no_units_is_refused(spec: CommandSpec, quantity: int) -> None:
    assert "quantity" in fields_of(spec, {**MOVE, "quantity": quantity})


@pytest.mark.parametrize("spec", [TRANSFER, SHIP], ids=lambda spec: spec.name)
def test_a_transfer_names_two_known_locations(spec: CommandSpec) -> None:
    assert (
        "unknown location"
        in fields_of(spec, {"quantity": 1, "from_location": "NOPE", "to_location": "S001"})["from_location"]
    )
    assert (
        "unknown location"
        in fields_of(spec, {"quantity": 1, "from_location": "MAIN", "to_location": "X9"})["to_location"]
    )
    assert fields_of(spec, {"quantity": 1}) == {"from_location": "is required", "to_location": "is required"}
    checked = spec.check(
        {"quantity": 2, "from_location": "s001", "to_location": "main"}, item_id=ITEM_ID, places=PLACES
    )
    assert checked.location == "S001"
    assert checked.data == StockTransferData(quantity=2, from_location="S001", to_location="MAIN")


@pytest.mark.parametrize("spec", [TRANSFER, SHIP], ids=lambda spec: spec.name)
def test_a_transfer_to_where_it_leaves_is_the_decisions_same_location(spec: CommandSpec) -> None:
    # Not a rule of the body (its document could not say it): the decision rejects it.
    checked = spec.check(
        {"quantity": 1, "from_location": "s001", "to_location": "S001 "}, item_id=ITEM_ID, places=PLACES
    )
    assert checked.data == StockTransferData(quantity=1, from_location="S001", to_location="S001")
    decided = spec.decide(make_item({"S001": 5}), event(spec.event_type, checked.data, location="S001"), context())
    assert no(decided).reason is Reason.SAME_LOCATION


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        (RECEIVE, "transfer_id"),
        (CANCEL_TRANSFER, "transfer_id"),
        (COMMIT_RESERVATION, "reservation_id"),
        (CANCEL_RESERVATION, "reservation_id"),
    ],
)
def test_a_record_id_is_required_and_must_be_a_uuid(spec: CommandSpec, name: str) -> None:
    assert fields_of(spec, {}) == {name: "is required"}
    assert fields_of(spec, {name: "not-a-uuid"}) == {name: "must be a UUID"}
    checked = spec.check({name: T1.upper()}, item_id=ITEM_ID, places=PLACES)
    assert getattr(checked.data, name) == T1


def test_a_receipt_of_a_negative_number_of_units_is_refused() -> None:
    assert "received" in fields_of(RECEIVE, {"transfer_id": T1, "received": -1})
    assert RECEIVE.check({"transfer_id": T1}, item_id=ITEM_ID, places=PLACES).data.received is None  # type: ignore[attr-defined]
    assert RECEIVE.check({"transfer_id": T1, "received": 0}, item_id=ITEM_ID, places=PLACES).data.received == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("quantity", [0, -1])
def test_a_reserve_or_release_of_no_units_is_refused(quantity: int) -> None:
    assert "quantity" in fields_of(RESERVE, {"quantity": quantity})
    assert "quantity" in fields_of(RELEASE, {"quantity": quantity})


def test_a_reserve_at_an_unknown_location_is_refused() -> None:
    assert "unknown location" in fields_of(RESERVE, {"quantity": 1, "location": "MARS"})["location"]


@pytest.mark.parametrize("seconds", [0, -5, MAX_HOLD_SECONDS + 1])
def test_an_expiry_in_seconds_is_between_one_second_and_the_longest_hold(seconds: int) -> None:
    assert fields_of(RESERVE, {"quantity": 1, "expires_in": seconds}) == {
        "expires_in": f"must be between 1 and {MAX_HOLD_SECONDS} seconds"
    }


@pytest.mark.parametrize(
    ("expires_at", "message"),
    [
        ("2030-01-01T00:00:00", "must include a time zone (Z or +hh:mm)"),
        ("tomorrow", "must be an RFC 3339 time, e.g. 2026-12-03T18:00:00Z"),
    ],
)
def test_an_expiry_moment_has_a_time_zone(expires_at: str, message: str) -> None:
    assert fields_of(RESERVE, {"quantity": 1, "expires_at": expires_at}) == {"expires_at": message}


def reserve_event(expires_at: str, submitted_at: str = NOW) -> Event:
    return event(
        EventType.STOCK_RESERVED, StockReservedData(quantity=1, expires_at=expires_at), occurred_at=submitted_at
    )


@pytest.mark.parametrize(
    ("expires_at", "message"),
    [
        ("2020-01-01T00:00:00Z", "before it was made"),
        (NOW, "before it was made"),
        ("2026-01-31T00:00:00.001Z", f"at most {MAX_HOLD_SECONDS} s after it is made"),
        ("9999-12-31T23:59:59.999Z", f"at most {MAX_HOLD_SECONDS} s after it is made"),
        # Beyond what a UTC time can say: the earliest or the latest moment there is.
        ("0001-01-01T00:00:00+14:00", "before it was made"),
        ("9999-12-31T23:59:59-14:00", f"at most {MAX_HOLD_SECONDS} s after it is made"),
    ],
)
def test_an_expiry_in_the_past_or_beyond_the_longest_hold_is_rejected_from_when_it_was_submitted(
    expires_at: str, message: str
) -> None:
    # The body only checks the moment's form; the decision judges it from the event's own time,
    # so a replay decides the same.
    checked = RESERVE.check({"quantity": 1, "expires_at": expires_at}, item_id=ITEM_ID, places=PLACES)
    data = checked.data
    assert isinstance(data, StockReservedData) and data.expires_at is not None
    rejection = no(RESERVE.decide(make_item(), reserve_event(data.expires_at), context()))
    assert rejection.reason is Reason.INVALID and message in rejection.message


def test_an_expiry_up_to_the_longest_hold_is_accepted() -> None:
    for expires_at in ("2026-01-01T00:00:00.001Z", "2026-01-31T00:00:00.000Z"):  # MAX_HOLD_SECONDS is 30 days
        done = ok(RESERVE.decide(make_item(), reserve_event(expires_at), context()))
        assert done.reservations[0].expires_at == expires_at
    assert MAX_HOLD_SECONDS == 30 * 24 * 3600


def test_a_domain_reserve_checks_its_expiry_against_the_submission_time() -> None:
    def at_expiry(expires_at: str) -> Decision:
        return reservations.reserve_stock(
            make_item(), location="MAIN", quantity=1, expected_version=None, now=LATER,
            reservation_id="r1", expires_at=expires_at, submitted_at=NOW,
        )  # fmt: skip

    assert no(at_expiry(NOW)).reason is Reason.INVALID
    assert no(at_expiry("2026-02-01T00:00:00.000Z")).reason is Reason.INVALID
    ok(at_expiry(EXPIRES))


def test_given_both_an_expiry_in_seconds_and_a_moment_the_earlier_holds() -> None:
    soon = RESERVE.check({"quantity": 1, "expires_in": 60, "expires_at": ahead(3600)}, item_id=ITEM_ID, places=PLACES)
    assert isinstance(soon.data, StockReservedData) and soon.data.expires_at is not None
    assert soon.data.expires_at <= moment_text(datetime.now(UTC) + timedelta(seconds=60))
    later = moment_text(datetime.now(UTC) + timedelta(seconds=120))
    chosen = RESERVE.check({"quantity": 1, "expires_in": 3600, "expires_at": later}, item_id=ITEM_ID, places=PLACES)
    assert isinstance(chosen.data, StockReservedData) and chosen.data.expires_at == later


def test_a_reference_is_at_most_its_maximum_length() -> None:
    assert fields_of(RESERVE, {"quantity": 1, "reference": "R" * (REFERENCE_MAX + 1)}) == {
        "reference": f"must be at most {REFERENCE_MAX} characters"
    }
    checked = RESERVE.check({"quantity": 1, "reference": "R" * REFERENCE_MAX}, item_id=ITEM_ID, places=PLACES)
    assert checked.data.reference == "R" * REFERENCE_MAX  # type: ignore[attr-defined]
    blank = RESERVE.check({"quantity": 1, "reference": "  "}, item_id=ITEM_ID, places=PLACES)
    assert blank.data.reference is None  # type: ignore[attr-defined]


def test_an_expiry_in_seconds_becomes_a_moment_in_the_event_data() -> None:
    before = moment_text(datetime.now(UTC) + timedelta(seconds=900))
    checked = RESERVE.check(
        {"quantity": 2, "location": "s001", "reference": "ORDER-1", "expires_in": 900}, item_id=ITEM_ID, places=PLACES
    )
    after = moment_text(datetime.now(UTC) + timedelta(seconds=900))
    data = checked.data
    assert isinstance(data, StockReservedData)
    assert data.expires_at is not None and before <= data.expires_at <= after
    assert (data.quantity, data.reference, checked.location) == (2, "ORDER-1", "S001")
    assert "expires_in" not in msgspec.to_builtins(data)


def test_an_expiry_moment_is_kept_in_the_one_format_of_the_data() -> None:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    local = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    checked = RESERVE.check({"quantity": 1, "expires_at": local}, item_id=ITEM_ID, places=PLACES)
    assert checked.data.expires_at == moment_text(moment)  # type: ignore[attr-defined]
    assert checked.data.expires_at.endswith("Z")  # type: ignore[attr-defined]


def test_an_adjust_reason_comes_from_the_closed_list() -> None:
    assert "reason" in fields_of(ADJUST, {"quantity": -1, "reason": "stolen-ish"})
    assert "reason" in fields_of(ADJUST, {"quantity": -1, "reason": "count"})  # recorded by the listener only
    assert "reason" in fields_of(ADJUST, {"quantity": -1, "reason": "transit_loss"})
    checked = ADJUST.check({"quantity": -1, "reason": " Theft "}, item_id=ITEM_ID, places=PLACES)
    assert checked.data == StockAdjustedData(quantity=-1, reason="theft")
    default = ADJUST.check({"quantity": 3}, item_id=ITEM_ID, places=PLACES)
    assert default.data == StockAdjustedData(quantity=3, reason="correction")


@pytest.mark.parametrize("reason", [r.value for r, way in CHOSEN_REASONS.items() if way is not None])
def test_an_adjust_reason_moves_stock_its_own_way(reason: str) -> None:
    way = CHOSEN_REASONS[AdjustmentReason(reason)]
    assert way is not None
    wrong = fields_of(ADJUST, {"quantity": -way * 2, "reason": reason})
    assert list(wrong) == ["quantity"] and ("add" if way > 0 else "remove") in wrong["quantity"]
    ADJUST.check({"quantity": way * 2, "reason": reason}, item_id=ITEM_ID, places=PLACES)


def test_a_sale_cannot_add_stock_and_a_correction_goes_either_way() -> None:
    assert fields_of(ADJUST, {"quantity": 2, "reason": "sold"}) == {"quantity": "must remove stock for reason 'sold'"}
    for quantity in (-2, 2):
        ADJUST.check({"quantity": quantity, "reason": "correction"}, item_id=ITEM_ID, places=PLACES)


def test_a_count_is_never_below_zero() -> None:
    assert fields_of(COUNT, {"counted": -1}) == {"counted": "must be at least 0"}
    assert fields_of(COUNT, {}) == {"counted": "is required"}
    checked = COUNT.check({"counted": 0, "location": "S002"}, item_id=ITEM_ID, places=PLACES)
    assert checked.location == "S002" and checked.data.counted == 0  # type: ignore[attr-defined]


def test_every_broken_rule_is_reported_together() -> None:
    errors = fields_of(RESERVE, {"quantity": 0, "location": "MARS", "reference": "x" * 500, "expires_in": 0})
    assert set(errors) == {"quantity", "location", "reference", "expires_in"}
