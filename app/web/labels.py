"""Words for commands, reasons and states as people see them on the pages."""

from __future__ import annotations

from typing import Any

from app.domain.catalogue import COMMANDS
from app.domain.catalogue.fields import Change
from app.domain.model import CHOSEN_REASONS, AdjustmentReason, ReservationState, TransferState
from app.domain.records import CommandStatusView, OutcomeChange

VERBS = {spec.event_type.value: spec.verb for spec in COMMANDS}
# Commands whose amount is a signed change show it with its sign: "Adjust -2".
SIGNED = {spec.event_type.value for spec in COMMANDS if isinstance(spec.fields.get("quantity"), Change)}
# Commands that name no location of their own (an edit, a receipt, a commit...): a rejection of
# one carries the default location, which says nothing about where it happened.
PLACELESS = {spec.event_type.value for spec in COMMANDS if spec.location_field not in spec.fields}

# Why on-hand stock moved (app/domain/model.py AdjustmentReason), in words.
REASON_LABELS: dict[str, str] = {
    AdjustmentReason.RECEIVED: "Received",
    AdjustmentReason.SOLD: "Sold",
    AdjustmentReason.RETURNED: "Returned",
    AdjustmentReason.DAMAGED: "Damaged",
    AdjustmentReason.LOST: "Lost",
    AdjustmentReason.THEFT: "Theft",
    AdjustmentReason.CORRECTION: "Correction",
    AdjustmentReason.COUNT: "Count",
    AdjustmentReason.TRANSIT_LOSS: "Lost in transit",
}
assert set(REASON_LABELS) == set(AdjustmentReason), "every reason has a label"

# The reasons a person may choose, for the adjust form: (value, label, which way it moves stock).
ADJUST_REASONS: tuple[tuple[str, str, str], ...] = tuple(
    (reason.value, REASON_LABELS[reason], {1: "adds", -1: "removes", None: "either way"}[direction])
    for reason, direction in CHOSEN_REASONS.items()
)

STATE_LABELS: dict[str, str] = {
    TransferState.IN_TRANSIT: "In transit",
    TransferState.RECEIVED: "Received",
    TransferState.CANCELLED: "Cancelled",
    ReservationState.OPEN: "Open",
    ReservationState.COMMITTED: "Sold",
    ReservationState.CANCELLED: "Cancelled",
    ReservationState.EXPIRED: "Expired",
    ReservationState.RELEASED: "Released",
}
TRANSFER_STATES: tuple[tuple[str, str], ...] = tuple((s.value, STATE_LABELS[s]) for s in TransferState)
RESERVATION_STATES: tuple[tuple[str, str], ...] = tuple((s.value, STATE_LABELS[s]) for s in ReservationState)


def verb(event_type: str) -> str:
    """A command's verb from its event type ("inventory.stock.counted" -> "Count")."""
    return VERBS.get(event_type, event_type.rsplit(".", 1)[-1])


def reason_label(reason: str | None) -> str:
    return REASON_LABELS.get(reason or "", reason or "")


def state_label(state: str | None) -> str:
    return STATE_LABELS.get(state or "", state or "")


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
