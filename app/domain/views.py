"""The item as readers see it, built from the domain model in one place, so an item looks the same
whether it came from SQLite, the cache or the live stream (the shapes are in
``app/domain/records.py``)."""

from __future__ import annotations

import msgspec

from app.domain.model import Item, Reservation, StockLevel, Transfer
from app.domain.records import ItemSummary, ItemView, LevelView, ReservationView, StockView, TransferView


def level_view(level: StockLevel) -> LevelView:
    return LevelView(
        location=level.location,
        quantity=level.quantity,
        reserved=level.reserved,
        available=level.available,
        version=level.version,
        updated_at=level.updated_at,
    )


def summary_view(item: Item) -> ItemSummary:
    return ItemSummary(
        id=item.id,
        sku=item.sku,
        name=item.name,
        description=item.description,
        quantity=item.quantity,
        reserved=item.reserved,
        available=item.available,
        version=item.version,
        created_at=item.created_at,
        updated_at=item.updated_at,
        low_stock_threshold=item.low_stock_threshold,
        in_transit=item.in_transit,
    )


def transfer_view(transfer: Transfer) -> TransferView:
    return TransferView(
        id=transfer.id,
        item_id=transfer.item_id,
        from_location=transfer.from_location,
        to_location=transfer.to_location,
        quantity=transfer.quantity,
        received=transfer.received,
        state=transfer.state.value,
        shipped_at=transfer.shipped_at,
        closed_at=transfer.closed_at,
        note=transfer.note,
    )


def reservation_view(reservation: Reservation) -> ReservationView:
    return ReservationView(
        id=reservation.id,
        item_id=reservation.item_id,
        location=reservation.location,
        quantity=reservation.quantity,
        reserved=reservation.reserved,
        state=reservation.state.value,
        reference=reservation.reference,
        expires_at=reservation.expires_at,
        created_at=reservation.created_at,
        closed_at=reservation.closed_at,
    )


def with_levels(summary: ItemSummary, levels: list[LevelView]) -> ItemView:
    return ItemView(**msgspec.structs.asdict(summary), locations=sorted(levels, key=lambda lv: lv.location))


def item_view(item: Item) -> ItemView:
    """The item with the levels it was loaded with (all of them, for a full read)."""
    return with_levels(summary_view(item), [level_view(level) for level in item.levels.values()])


def at_location(view: ItemView, location: str) -> ItemView:
    """The same item with its totals narrowed to one location (what a store sees)."""
    level = next((lv for lv in view.locations if lv.location == location), None)
    return msgspec.structs.replace(
        view,
        quantity=level.quantity if level else 0,
        reserved=level.reserved if level else 0,
        available=level.available if level else 0,
    )


def stock_view(view: ItemView) -> StockView:
    return StockView(
        id=view.id,
        sku=view.sku,
        quantity=view.quantity,
        reserved=view.reserved,
        available=view.available,
        version=view.version,
        updated_at=view.updated_at,
        locations=view.locations,
    )
