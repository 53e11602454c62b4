"""How items and stock levels sit in SQLite rows: one definition for the listener (the writer)
and for the read-only readers, so both load an item the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.domain.model import Item, StockLevel

# The item row carries the chain totals (quantity, reserved), kept by the listener with every
# change, so no read of an item's totals has to add up its levels.
ITEM_COLUMNS = (
    "id, sku, name, description, version, created_at, updated_at, deleted_at, low_stock_threshold, quantity, reserved"
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


def assemble_items(item_rows: Iterable[Sequence[Any]], level_rows: Iterable[Sequence[Any]]) -> dict[str, Item]:
    """Items from their rows, with whichever of their levels were read (all, some or none)."""
    levels: dict[str, dict[str, StockLevel]] = {}
    for item_id, location, quantity, reserved, version, updated_at in level_rows:
        levels.setdefault(item_id, {})[location] = StockLevel(location, quantity, reserved, version, updated_at)
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
        )
        for row in item_rows
    }
