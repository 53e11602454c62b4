"""Words for commands as people see them on the pages."""

from __future__ import annotations

from typing import Any

VERBS = {
    "inventory.items.created": "Create",
    "inventory.items.updated": "Edit",
    "inventory.items.deleted": "Delete",
    "inventory.stock.adjusted": "Adjust",
    "inventory.stock.reserved": "Reserve",
    "inventory.stock.released": "Release",
}


def command_label(event_type: str, what: str, quantity: int | None = None) -> str:
    verb = VERBS.get(event_type, "Command")
    amount = f" {quantity:+d}" if event_type.endswith("adjusted") and quantity else (f" {quantity}" if quantity else "")
    return f"{verb}{amount} · {what}"


def badge_context(outcome: dict[str, Any], label: str = "") -> dict[str, Any]:
    """A status resource or an outcome change, as the badge template wants it."""
    if not label:
        item = outcome.get("item") or {}
        what = item.get("sku") or str(outcome.get("item_id", ""))[:8]
        label = command_label(str(outcome.get("event_type", "")), what)
    return {
        "command_id": outcome["command_id"],
        "status": outcome["status"],
        "reason": outcome.get("reason"),
        "message": outcome.get("message"),
        "label": label,
    }
