"""Words for commands as people see them on the pages."""

from __future__ import annotations

from typing import Any

from app.domain.catalogue import COMMANDS
from app.domain.catalogue.fields import Change
from app.domain.records import CommandStatusView, OutcomeChange

VERBS = {spec.event_type.value: spec.verb for spec in COMMANDS}
# Commands whose amount is a signed change show it with its sign: "Adjust -2".
SIGNED = {spec.event_type.value for spec in COMMANDS if isinstance(spec.fields.get("quantity"), Change)}


def command_label(event_type: str, what: str, quantity: int | None = None) -> str:
    verb = VERBS.get(event_type, "Command")
    amount = f" {quantity:+d}" if event_type in SIGNED and quantity else (f" {quantity}" if quantity else "")
    return f"{verb}{amount} · {what}"


def badge_context(outcome: OutcomeChange | CommandStatusView, label: str = "") -> dict[str, Any]:
    """A status resource or an outcome change, as the badge template wants it."""
    if not label:
        event_type = outcome.event_type if isinstance(outcome, OutcomeChange) else ""
        label = command_label(event_type, outcome.item_id[:8])
    return {
        "command_id": outcome.command_id,
        "status": outcome.status,
        "reason": outcome.reason,
        "message": outcome.message if isinstance(outcome, OutcomeChange) else None,
        "label": label,
    }
