"""Which commands a user limited to some locations may send: a pure rule over the command's
declaration (app/domain/catalogue) and its checked request.

A user with no locations may act everywhere. A user limited to the locations L may send:

* a stock command at one location (adjust, count, reserve, release): when that location is in L;
* a transfer or a shipment: when its ``from_location`` is in L (a store sends from its own
  stock; where the units go is the sender's choice);
* a receive: when the transfer's ``to_location`` is in L (the store the units arrive at);
* a transfer's cancel: when its ``from_location`` is in L (the units go back there);
* a reservation's commit or cancel: when the reservation's location is in L;
* never an item catalogue command (create, edit, delete an item): the catalogue is shared by
  every store, so changing it needs a user with every location.

The commands that name an existing transfer or reservation are decided on that record's
locations, which the caller looks up (the read model); a record it cannot find yet is refused
as ``record_not_known_yet``, because the store it belongs to is not known and a limited user
must not act on a record of another store.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from app.domain.catalogue.spec import CommandRequest, CommandSpec, no_levels
from app.domain.events import EventType

LOCATION_NOT_ALLOWED = "location_not_allowed"
EVERY_LOCATION_NEEDED = "every_location_needed"
RECORD_NOT_KNOWN_YET = "record_not_known_yet"

# The commands acting on a named transfer at its destination; every other one acts at the source.
_AT_DESTINATION = frozenset({EventType.TRANSFER_RECEIVED})


@dataclass(frozen=True)
class RecordPlaces:
    """Where a named transfer (from, to) or reservation (its location, twice) is."""

    from_location: str
    to_location: str


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str
    # The location the command acts at, when it has one the user may not act at.
    location: str | None = None


def changes_catalogue(spec: CommandSpec) -> bool:
    """Create, edit, delete: a command on the item itself, not on a level or a record."""
    return spec.creates_item or (spec.record is None and spec.touches is no_levels)


def named_record(spec: CommandSpec, command: CommandRequest) -> tuple[str, str] | None:
    """The existing transfer or reservation the command names, as (kind, id); None for a command
    that names none (a shipment or a reserve *makes* one, under an id of its own)."""
    if spec.record is None:
        return None
    record_id = getattr(command.data, spec.record.key, None)
    return (spec.record.kind, record_id) if isinstance(record_id, str) else None


def acting_location(spec: CommandSpec, command: CommandRequest, record: RecordPlaces | None) -> str | None:
    """The location whose stock the command changes first, by the rules above; None when it
    names a record that is not known."""
    if named_record(spec, command) is None:
        return command.location
    if record is None:
        return None
    return record.to_location if spec.event_type in _AT_DESTINATION else record.from_location


def refusal(
    spec: CommandSpec, command: CommandRequest, allowed: Collection[str], record: RecordPlaces | None = None
) -> Refusal | None:
    """Why a user limited to ``allowed`` may not send this command; None when it may (and
    always for a user with every location, ``allowed`` empty)."""
    if not allowed:
        return None
    if changes_catalogue(spec):
        return Refusal(
            EVERY_LOCATION_NEEDED,
            f"{spec.verb.lower()} an item changes it at every store: it needs a user with every location",
        )
    location = acting_location(spec, command, record)
    if location is None:
        kind = spec.record.kind if spec.record is not None else "record"
        return Refusal(
            RECORD_NOT_KNOWN_YET,
            f"this {kind} is not known yet (it may have been made a moment ago); retry in a moment",
        )
    if location not in allowed:
        places = ", ".join(sorted(allowed))
        return Refusal(
            LOCATION_NOT_ALLOWED, f"you may not act at {location}; your locations: {places}", location=location
        )
    return None
