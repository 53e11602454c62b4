"""Reservations: units held at one location until they are sold, given back, or expire.

Pure, like app/domain/model.py. Every reserve makes a reservation record. A plain reserve (no
reference, no expiry) makes an *anonymous* one, and a plain release gives back units of the
anonymous ones at its location, newest first, so reserve-then-release keeps working as it always
has. Time never comes from a clock here: a commit is too late when the command was *submitted*
at or after the expiry (``occurred_at``, carried in the event), and an expiry applies only to a
reservation still open, so replaying the log decides every one of them the same way again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.domain.model import (
    MAX_COMMAND_QUANTITY,
    Applied,
    Decision,
    Item,
    Movement,
    Reason,
    Rejected,
    Reservation,
    ReservationState,
    evolve,
    live_item,
    moved,
    with_level,
)

REFERENCE_MAX = 100
# A reservation may be held for at most this long (docs/decisions.md).
MAX_HOLD_SECONDS = 30 * 24 * 3600


def _bad_expiry(expires_at: str, submitted_at: str | None) -> Rejected | None:
    """An expiry must be after the reserve was submitted and at most MAX_HOLD_SECONDS after it
    (both times are in the event: a replay decides the same)."""
    if submitted_at is None:
        return None
    if expires_at <= submitted_at:
        return Rejected(Reason.INVALID, f"the reservation would expire ({expires_at}) before it was made")
    latest = _moment(submitted_at) + timedelta(seconds=MAX_HOLD_SECONDS)
    if _moment(expires_at) > latest:
        return Rejected(Reason.INVALID, f"a reservation expires at most {MAX_HOLD_SECONDS} s after it is made")
    return None


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _with_reservations(item: Item, *changed: Reservation) -> Item:
    return evolve(item, reservations={**item.reservations, **{r.id: r for r in changed}})


def reserve_stock(
    item: Item | None,
    *,
    location: str,
    quantity: int,
    expected_version: int | None,
    now: str,
    reservation_id: str,
    reference: str | None = None,
    expires_at: str | None = None,
    submitted_at: str | None = None,
) -> Decision:
    live = live_item(item, expected_version)
    if isinstance(live, Rejected):
        return live
    if not 1 <= quantity <= MAX_COMMAND_QUANTITY:
        return Rejected(Reason.INVALID, "quantity out of range")
    if expires_at is not None and (bad := _bad_expiry(expires_at, submitted_at)):
        return bad
    existing = live.reservations.get(reservation_id)
    if existing is not None:
        if not existing.open:
            # Its units went back (or were sold): saying "applied" would claim units nobody holds.
            return Rejected(
                Reason.RESERVATION_CLOSED,
                f"reference {reference!r} was reserved for this item and is {existing.state.value}; "
                "use a new reference to reserve again",
            )
        if existing.location == location and existing.reserved == quantity and existing.reference == reference:
            return Applied(item=live, changed=False)  # the same reference reserves once
        return Rejected(
            Reason.INVALID,
            f"reference {reference!r} already reserved {existing.reserved} at {existing.location} for this item",
        )
    level = live.level(location)
    if quantity > level.available:
        return Rejected(
            Reason.INSUFFICIENT_STOCK,
            f"cannot reserve {quantity} at {location}: {level.available} available",
        )
    reservation = Reservation(
        id=reservation_id,
        item_id=live.id,
        location=location,
        quantity=quantity,
        reserved=quantity,
        state=ReservationState.OPEN,
        created_at=now,
        reference=reference,
        expires_at=expires_at,
    )
    changed = _with_reservations(with_level(live, moved(level, now, reserved=quantity), now), reservation)
    return Applied(
        item=changed,
        movements=(Movement(location, reserved_delta=quantity, reference=reservation_id),),
        reservations=(reservation,),
    )


def newest_first(reservations: list[Reservation]) -> list[Reservation]:
    """Stored ones by the order they were stored in, newer than all of them the ones made since
    (in the order they were made)."""
    stored = sorted((r for r in reservations if r.seq is not None), key=lambda r: r.seq or 0)
    made = [r for r in reservations if r.seq is None]
    return list(reversed(stored + made))


def release_stock(
    item: Item | None, *, location: str, quantity: int, expected_version: int | None, now: str
) -> Decision:
    """A plain release: gives back units of anonymous reservations at ``location``, newest first."""
    live = live_item(item, expected_version)
    if isinstance(live, Rejected):
        return live
    if not 1 <= quantity <= MAX_COMMAND_QUANTITY:
        return Rejected(Reason.INVALID, "quantity out of range")
    level = live.level(location)
    candidates = newest_first(
        [r for r in live.reservations.values() if r.open and r.anonymous and r.location == location]
    )
    releasable = sum(r.quantity for r in candidates)
    if quantity > releasable:
        held = level.reserved - releasable
        detail = (
            f"; {held} more are held by reservations with a reference or expiry (cancel those by id)" if held else ""
        )
        return Rejected(
            Reason.OVER_RELEASE,
            f"cannot release {quantity} at {location}: only {releasable} reserved{detail}",
        )
    left = quantity
    changed: list[Reservation] = []
    for reservation in candidates:
        if left == 0:
            break
        take = min(left, reservation.quantity)
        left -= take
        remaining = reservation.quantity - take
        changed.append(
            evolve(reservation, quantity=remaining)
            if remaining
            else evolve(reservation, quantity=0, state=ReservationState.RELEASED, closed_at=now)
        )
    after = _with_reservations(with_level(live, moved(level, now, reserved=-quantity), now), *changed)
    return Applied(
        item=after,
        movements=(Movement(location, reserved_delta=-quantity),),
        reservations=tuple(changed),
    )


def _open_reservation(item: Item, reservation_id: str) -> Reservation | Rejected:
    reservation = item.reservations.get(reservation_id)
    if reservation is None or reservation.item_id != item.id:
        return Rejected(Reason.UNKNOWN_RESERVATION, f"no reservation {reservation_id} of this item")
    if not reservation.open:
        return Rejected(Reason.RESERVATION_CLOSED, f"reservation {reservation_id} is already {reservation.state.value}")
    return reservation


def _close(item: Item, reservation: Reservation, state: ReservationState, now: str, *, sold: bool) -> Applied:
    units = reservation.quantity
    level = moved(item.level(reservation.location), now, quantity=-units if sold else 0, reserved=-units)
    closed = evolve(reservation, state=state, closed_at=now)
    after = _with_reservations(with_level(item, level, now), closed)
    movement = Movement(
        reservation.location,
        quantity_delta=-units if sold else 0,
        reserved_delta=-units,
        reference=reservation.id,
    )
    return Applied(item=after, movements=(movement,), reservations=(closed,))


def commit_reservation(
    item: Item | None, *, reservation_id: str, expected_version: int | None, submitted_at: str, now: str
) -> Decision:
    """The units are sold: on hand and reserved both drop. Too late once it has expired."""
    live = live_item(item, expected_version)
    if isinstance(live, Rejected):
        return live
    reservation = _open_reservation(live, reservation_id)
    if isinstance(reservation, Rejected):
        return reservation
    if reservation.expires_at is not None and submitted_at >= reservation.expires_at:
        return Rejected(Reason.RESERVATION_EXPIRED, f"reservation {reservation_id} expired at {reservation.expires_at}")
    return _close(live, reservation, ReservationState.COMMITTED, now, sold=True)


def cancel_reservation(item: Item | None, *, reservation_id: str, expected_version: int | None, now: str) -> Decision:
    """The units become available again."""
    live = live_item(item, expected_version)
    if isinstance(live, Rejected):
        return live
    reservation = _open_reservation(live, reservation_id)
    if isinstance(reservation, Rejected):
        return reservation
    return _close(live, reservation, ReservationState.CANCELLED, now, sold=False)


def expire_reservation(item: Item | None, *, reservation_id: str, due_at: str, now: str) -> Decision:
    """Published by the expiry process when due; applies only to a reservation still open."""
    live = live_item(item, None)
    if isinstance(live, Rejected):
        return live
    reservation = _open_reservation(live, reservation_id)
    if isinstance(reservation, Rejected):
        return reservation
    if reservation.expires_at is None or due_at < reservation.expires_at:
        return Rejected(Reason.NOT_DUE, f"reservation {reservation_id} is not due to expire")
    return _close(live, reservation, ReservationState.EXPIRED, now, sold=False)
