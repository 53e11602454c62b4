"""Build command events and read the inventory database the way an auditor would."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import msgspec

from app.clock import utc_now
from app.domain.catalogue import ItemCreatedData, StockAdjustedData, StockMovedData
from app.domain.catalogue.reservations import ReservationData
from app.domain.catalogue.stock import StockCountedData, StockReservedData
from app.domain.catalogue.transfers import StockTransferData, TransferCancelledData, TransferReceivedData
from app.domain.events import Event, EventType, encode_event
from app.eventlog.base import Message


def event(event_type: EventType, item_id: str, data: msgspec.Struct, *, location: str = "MAIN", **extra: Any) -> Event:
    return Event(
        event_id=extra.pop("event_id", str(uuid.uuid4())),
        event_type=event_type,
        item_id=item_id,
        location=location,
        command_id=extra.pop("command_id", str(uuid.uuid4())),
        request_id="test",
        actor="tester",
        occurred_at=utc_now(),
        data=data,
        **extra,
    )


def create(item_id: str, sku: str, quantity: int = 0, **extra: Any) -> Event:
    return event(
        EventType.ITEM_CREATED, item_id, ItemCreatedData(sku=sku, name=f"Item {sku}", quantity=quantity), **extra
    )


def adjust(item_id: str, delta: int, **extra: Any) -> Event:
    return event(EventType.STOCK_ADJUSTED, item_id, StockAdjustedData(quantity=delta), **extra)


def reserve(
    item_id: str, quantity: int = 1, *, reference: str | None = None, expires_at: str | None = None, **extra: Any
) -> Event:
    data = StockReservedData(quantity=quantity, reference=reference, expires_at=expires_at)
    return event(EventType.STOCK_RESERVED, item_id, data, **extra)


def release(item_id: str, quantity: int = 1, **extra: Any) -> Event:
    return event(EventType.STOCK_RELEASED, item_id, StockMovedData(quantity=quantity), **extra)


def count(item_id: str, counted: int, **extra: Any) -> Event:
    return event(EventType.STOCK_COUNTED, item_id, StockCountedData(counted=counted), **extra)


def transfer(item_id: str, quantity: int, from_location: str, to_location: str, **extra: Any) -> Event:
    data = StockTransferData(quantity=quantity, from_location=from_location, to_location=to_location)
    return event(EventType.STOCK_TRANSFERRED, item_id, data, location=from_location, **extra)


def ship(item_id: str, quantity: int, from_location: str, to_location: str, **extra: Any) -> Event:
    data = StockTransferData(quantity=quantity, from_location=from_location, to_location=to_location)
    return event(EventType.TRANSFER_SHIPPED, item_id, data, location=from_location, **extra)


def receive(item_id: str, transfer_id: str, received: int | None = None, **extra: Any) -> Event:
    data = TransferReceivedData(transfer_id=transfer_id, received=received)
    return event(EventType.TRANSFER_RECEIVED, item_id, data, **extra)


def cancel_transfer(item_id: str, transfer_id: str, **extra: Any) -> Event:
    return event(EventType.TRANSFER_CANCELLED, item_id, TransferCancelledData(transfer_id=transfer_id), **extra)


def commit_reservation(item_id: str, reservation_id: str, **extra: Any) -> Event:
    return event(EventType.RESERVATION_COMMITTED, item_id, ReservationData(reservation_id=reservation_id), **extra)


def cancel_reservation(item_id: str, reservation_id: str, **extra: Any) -> Event:
    return event(EventType.RESERVATION_CANCELLED, item_id, ReservationData(reservation_id=reservation_id), **extra)


def message(e: Event) -> Message:
    return Message(e.topic, e.item_id.encode(), encode_event(e), tuple(e.headers()))


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def level(db: Path, item_id: str, location: str = "MAIN") -> tuple[int, int] | None:
    rows = query(
        db, "SELECT quantity, reserved FROM stock_levels WHERE item_id = ? AND location = ?", (item_id, location)
    )
    return (rows[0][0], rows[0][1]) if rows else None


def outcomes(db: Path) -> dict[str, tuple[str, str | None]]:
    return {
        cid: (status, reason)
        for cid, status, reason in query(db, "SELECT command_id, status, reason FROM command_outcomes")
    }
