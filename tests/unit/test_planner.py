"""Planning a batch: ordering rules that do not need a database."""

from __future__ import annotations

import uuid

from app.domain import ids
from app.domain.catalogue import ItemCreatedData, StockAdjustedData
from app.domain.catalogue.reservations import ReservationData
from app.domain.catalogue.stock import StockReservedData
from app.domain.catalogue.transfers import StockTransferData, TransferReceivedData
from app.domain.events import Event, EventType
from app.listener.planner import Loaded, Planner

NOW = "2026-01-01T00:00:00.000Z"


def ev(event_type: EventType, item_id: str, data: object, location: str = "MAIN") -> Event:
    return Event(
        event_id=str(uuid.uuid4()), event_type=event_type, item_id=item_id, location=location,
        command_id=str(uuid.uuid4()), request_id="r", actor="t", occurred_at=NOW, data=data,  # type: ignore[arg-type]
    )  # fmt: skip


def planner(loaded: Loaded | None = None) -> Planner:
    return Planner(loaded or Loaded(), now=NOW, now_epoch=1000.0, orphan_wait=5.0)


def test_a_stock_event_before_its_create_waits_then_applies_after_it() -> None:
    item_id = str(uuid.uuid4())
    p = planner()
    reserve = ev(EventType.STOCK_RESERVED, item_id, StockReservedData(quantity=2))
    p.apply(reserve, b"raw")
    assert [parked.event for parked in p.plan.parked] == [reserve]
    assert p.plan.outcomes == []
    p.apply(ev(EventType.ITEM_CREATED, item_id, ItemCreatedData(sku="A", name="a", quantity=5)), b"raw")
    assert p.plan.parked == []  # drained in the same batch
    assert [o.status for o in p.plan.outcomes] == ["applied", "applied"]
    (item,) = p.plan.new_items.values()
    assert item.levels["MAIN"].reserved == 2 and item.version == 2


def test_later_events_of_a_waiting_item_wait_behind_it() -> None:
    item_id = str(uuid.uuid4())
    p = planner()
    p.apply(ev(EventType.STOCK_ADJUSTED, item_id, StockAdjustedData(quantity=3)), b"1")
    p.apply(ev(EventType.STOCK_RESERVED, item_id, StockReservedData(quantity=1)), b"2")
    assert [parked.value for parked in p.plan.parked] == [b"1", b"2"]
    assert all(parked.deadline == 1005.0 for parked in p.plan.parked)


def test_a_rejected_create_rejects_what_waited_for_it() -> None:
    item_id = str(uuid.uuid4())
    p = planner(Loaded(sku_owners={"A": "someone-else"}))
    p.apply(ev(EventType.STOCK_RESERVED, item_id, StockReservedData(quantity=1)), b"raw")
    p.apply(ev(EventType.ITEM_CREATED, item_id, ItemCreatedData(sku="A", name="a")), b"raw")
    assert [(o.status, o.reason) for o in p.plan.outcomes] == [
        ("rejected", "duplicate_sku"),
        ("rejected", "unknown_item"),
    ]


def test_an_expired_wait_ends_as_unknown_item() -> None:
    item_id = str(uuid.uuid4())
    first = planner()
    first.apply(ev(EventType.STOCK_RESERVED, item_id, StockReservedData(quantity=1)), b"raw")
    parked = first.plan.parked[0]
    later = planner()
    later.expire(parked.__class__(id=7, event=parked.event, value=parked.value, deadline=parked.deadline))
    assert later.plan.unparked == [7]
    assert [(o.status, o.reason) for o in later.plan.outcomes] == [("rejected", "unknown_item")]


def test_two_creates_with_one_sku_in_a_batch_keep_only_the_first() -> None:
    p = planner()
    p.apply(ev(EventType.ITEM_CREATED, str(uuid.uuid4()), ItemCreatedData(sku="A", name="a")), b"")
    p.apply(ev(EventType.ITEM_CREATED, str(uuid.uuid4()), ItemCreatedData(sku="A", name="b")), b"")
    assert [o.reason for o in p.plan.outcomes] == [None, "duplicate_sku"]


def test_one_change_record_per_item_with_its_final_state() -> None:
    item_id = str(uuid.uuid4())
    p = planner()
    p.apply(ev(EventType.ITEM_CREATED, item_id, ItemCreatedData(sku="A", name="a", quantity=10)), b"")
    for _ in range(3):
        p.apply(ev(EventType.STOCK_RESERVED, item_id, StockReservedData(quantity=1)), b"")
    changes = p.plan.item_changes()
    assert len(changes) == 1 and changes[0].version == 4
    assert changes[0].item is not None and changes[0].item.reserved == 3
    assert len(p.plan.outcomes) == 4 and len(p.plan.history) == 4


def test_a_rejected_command_on_a_reservation_or_transfer_is_answered_at_its_store() -> None:
    """Such a command's event carries the default location; its outcome must reach the pages of
    the store where the reservation or the transfer is, so the planner names that one."""
    item_id = str(uuid.uuid4())
    p = planner()
    p.apply(ev(EventType.ITEM_CREATED, item_id, ItemCreatedData(sku="A", name="a", quantity=20)), b"1")
    p.apply(ev(EventType.STOCK_TRANSFERRED, item_id, StockTransferData(5, "MAIN", "S001"), location="MAIN"), b"2")
    reserve = ev(EventType.STOCK_RESERVED, item_id, StockReservedData(quantity=2), location="S001")
    p.apply(reserve, b"3")
    ship = ev(EventType.TRANSFER_SHIPPED, item_id, StockTransferData(3, "MAIN", "S002"), location="MAIN")
    p.apply(ship, b"4")
    reservation = ids.reservation_id(item_id, reserve.command_id, None)
    transfer = ids.transfer_id(ship.command_id)
    for _ in range(2):  # the second of each is rejected: already closed
        p.apply(ev(EventType.RESERVATION_CANCELLED, item_id, ReservationData(reservation)), b"5")
        p.apply(ev(EventType.TRANSFER_RECEIVED, item_id, TransferReceivedData(transfer)), b"6")
    rejected = [(o.event_type, o.reason, o.location) for o in p.plan.outcomes if o.status == "rejected"]
    assert rejected == [
        (EventType.RESERVATION_CANCELLED.value, "reservation_closed", "S001"),
        (EventType.TRANSFER_RECEIVED.value, "transfer_closed", "S002"),
    ]
