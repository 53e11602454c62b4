"""How items and stock levels sit in SQLite rows: one definition for the listener (the writer)
and for the read-only readers, so both load an item the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.domain.model import Item, StockLevel

ITEM_COLUMNS = "id, sku, name, description, version, created_at, updated_at, deleted_at, low_stock_threshold"
LEVEL_COLUMNS = "item_id, location, quantity, reserved, version, updated_at"
# Both select by a JSON array of ids: one parameter, however many ids.
ITEMS_BY_IDS = f"SELECT {ITEM_COLUMNS} FROM items WHERE id IN (SELECT value FROM json_each(?))"
LEVELS_BY_IDS = f"SELECT {LEVEL_COLUMNS} FROM stock_levels WHERE item_id IN (SELECT value FROM json_each(?))"


def assemble_items(item_rows: Iterable[Sequence[Any]], level_rows: Iterable[Sequence[Any]]) -> dict[str, Item]:
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
        )
        for row in item_rows
    }
