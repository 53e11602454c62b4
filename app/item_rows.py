"""How items and stock levels sit in SQLite rows: one definition for the listener (the writer)
and for the read-only readers, so both load an item the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.domain.alerts import AlertState
from app.domain.model import Item, Reservation, ReservationState, StockLevel, Transfer, TransferState

# The item row carries the chain totals (quantity, reserved), kept by the listener with every
# change, so no read of an item's totals has to add up its levels.
ITEM_COLUMNS = (
    "id, sku, name, description, version, created_at, updated_at, deleted_at, low_stock_threshold, quantity, reserved, "
    "in_transit"
)
LEVEL_COLUMNS = "item_id, location, quantity, reserved, version, updated_at"
# Each selects by one JSON parameter, however many ids or pairs.
ITEMS_BY_IDS = f"SELECT {ITEM_COLUMNS} FROM items WHERE id IN (SELECT value FROM json_each(?))"
LEVELS_BY_IDS = f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE item_id IN (SELECT value FROM json_each(?))"
# [[item_id, location], ...]: just the levels a batch touches, by primary key.
LEVELS_BY_PAIRS = (
    f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE (item_id, location) IN "
    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
)
# The same levels with their stock alert state: what the listener loads (readers do not need it).
LEVELS_WITH_ALERT_BY_PAIRS = LEVELS_BY_PAIRS.replace(f"SELECT {LEVEL_COLUMNS} ", f"SELECT {LEVEL_COLUMNS}, alert ", 1)


TRANSFER_COLUMNS = "id, item_id, from_location, to_location, quantity, state, shipped_at, received, closed_at, note"
RESERVATION_COLUMNS = (
    "id, item_id, location, quantity, reserved, state, created_at, reference, expires_at, closed_at, seq"
)
TRANSFERS_BY_IDS = f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id IN (SELECT value FROM json_each(?))"
RESERVATIONS_BY_IDS = f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id IN (SELECT value FROM json_each(?))"
# [[item_id, location], ...] and a number of rows N: the newest N open anonymous reservations at
# each pair, each pair's read by the reservations_anonymous index (a plain release of N units needs
# at most N of them, each holding at least one unit: app/domain/reservations.py). N is the same
# for every pair (SQLite takes no outer column in a LIMIT): the most any pair of the batch needs.
ANONYMOUS_TO_RELEASE = (
    "WITH w AS (SELECT json_extract(value, '$[0]') AS item_id, json_extract(value, '$[1]') AS location "
    "FROM json_each(?)) "
    f"SELECT {', '.join('r.' + column.strip() for column in RESERVATION_COLUMNS.split(','))} "
    "FROM w JOIN reservations r ON r.seq IN (SELECT n.seq FROM reservations n WHERE n.item_id = w.item_id "
    "AND n.location = w.location AND n.state = 'open' AND n.reference IS NULL AND n.expires_at IS NULL "
    "ORDER BY n.seq DESC LIMIT ?)"
)


def transfer_from_row(row: Sequence[Any]) -> Transfer:
    return Transfer(
        id=row[0],
        item_id=row[1],
        from_location=row[2],
        to_location=row[3],
        quantity=row[4],
        state=TransferState(row[5]),
        shipped_at=row[6],
        received=row[7],
        closed_at=row[8],
        note=row[9],
    )


def reservation_from_row(row: Sequence[Any]) -> Reservation:
    return Reservation(
        id=row[0],
        item_id=row[1],
        location=row[2],
        quantity=row[3],
        reserved=row[4],
        state=ReservationState(row[5]),
        created_at=row[6],
        reference=row[7],
        expires_at=row[8],
        closed_at=row[9],
        seq=row[10],
    )


def assemble_items(
    item_rows: Iterable[Sequence[Any]],
    level_rows: Iterable[Sequence[Any]],
    transfer_rows: Iterable[Sequence[Any]] = (),
    reservation_rows: Iterable[Sequence[Any]] = (),
) -> dict[str, Item]:
    """Items from their rows, with whichever of their levels, transfers and reservations were
    read (all, some or none)."""
    transfers: dict[str, dict[str, Transfer]] = {}
    for row in transfer_rows:
        transfer = transfer_from_row(row)
        transfers.setdefault(transfer.item_id, {})[transfer.id] = transfer
    reservations: dict[str, dict[str, Reservation]] = {}
    for row in reservation_rows:
        reservation = reservation_from_row(row)
        reservations.setdefault(reservation.item_id, {})[reservation.id] = reservation
    levels: dict[str, dict[str, StockLevel]] = {}
    for item_id, location, quantity, reserved, version, updated_at, *alert in level_rows:
        state = AlertState(alert[0]) if alert else None  # only in the listener's rows
        levels.setdefault(item_id, {})[location] = StockLevel(location, quantity, reserved, version, updated_at, state)
    return {
        row[0]: Item(
            id=row[0],
            sku=row[1],
            name=row[2],
            description=row[3],
            version=row[4],
            created_at=row[5],
            updated_at=row[6],
            deleted_at=row[7],
            levels=levels.get(row[0], {}),
            low_stock_threshold=row[8],
            quantity=row[9],
            reserved=row[10],
            in_transit=row[11],
            transfers=transfers.get(row[0], {}),
            reservations=reservations.get(row[0], {}),
        )
        for row in item_rows
    }
