"""The JSON shape of an item, shared by the change feed, the cache and the query API.

One function builds it, so an item looks the same whether it came from SQLite, Redis or the
live stream.
"""

from __future__ import annotations

from typing import Any

from app.domain.model import Item, StockLevel

ItemView = dict[str, Any]


def level_view(level: StockLevel) -> dict[str, Any]:
    return {
        "location": level.location,
        "quantity": level.quantity,
        "reserved": level.reserved,
        "available": level.available,
        "version": level.version,
        "updated_at": level.updated_at,
    }


def item_view(item: Item) -> ItemView:
    return {
        "id": item.id,
        "sku": item.sku,
        "name": item.name,
        "description": item.description,
        "quantity": item.quantity,
        "reserved": item.reserved,
        "available": item.available,
        "version": item.version,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "low_stock_threshold": item.low_stock_threshold,
        "locations": [level_view(item.levels[code]) for code in sorted(item.levels)],
    }


def at_location(view: ItemView, location: str) -> ItemView:
    """The same item with its totals narrowed to one location (what a store sees)."""
    level = next((lv for lv in view["locations"] if lv["location"] == location), None)
    narrowed = dict(view)
    narrowed["quantity"] = level["quantity"] if level else 0
    narrowed["reserved"] = level["reserved"] if level else 0
    narrowed["available"] = level["available"] if level else 0
    return narrowed
