"""Ids the listener and the command service must agree on without asking each other.

A reservation's or a transfer's id is derived from the command that makes it, so the command
service can answer it in the 202 and the listener (or a replay) makes the very same record. A
reservation with a ``reference`` takes its id from the item and the reference instead: the same
reference reserves once.
"""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1c2a47-1d0e-4a7b-9d1e-5b3c8e2f4a10")


def transfer_id(command_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"transfer:{command_id}"))


def reservation_id(item_id: str, command_id: str, reference: str | None) -> str:
    if reference is not None:
        return str(uuid.uuid5(_NAMESPACE, f"reservation:{item_id}:{reference}"))
    return str(uuid.uuid5(_NAMESPACE, f"reservation:{command_id}"))


def expiry_ids(reservation: str) -> tuple[str, str]:
    """The event id and command id of a reservation's expiry: the same every time it is published,
    so a second copy is dropped as a duplicate and its outcome is recorded once."""
    return (
        str(uuid.uuid5(_NAMESPACE, f"expiry-event:{reservation}")),
        str(uuid.uuid5(_NAMESPACE, f"expiry-command:{reservation}")),
    )
