"""Items and stock levels, and the rules every change must keep.

Pure: no I/O, no framework. The listener loads aggregates, asks these functions what a
command does to them, and writes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

from app.domain.alerts import AlertState

NAME_MAX = 200
DESCRIPTION_MAX = 2000
REASON_MAX = 200
# One command moves at most a billion units; a level holds at most a trillion. Both are far
# beyond a shop's needs and keep every figure exact in JSON numbers and SQLite integers.
MAX_COMMAND_QUANTITY = 1_000_000_000
MAX_LEVEL_QUANTITY = 1_000_000_000_000


_Record = TypeVar("_Record")


def evolve(record: _Record, **changes: Any) -> _Record:
    """``dataclasses.replace`` for the frozen records of this module, without running their
    ``__init__`` again: the listener makes several copies per event, and a frozen ``__init__``
    (a guarded setattr per field, then ``__post_init__``) costs more than the rest of the
    decision. Only for values that are valid already: nothing is checked or derived again."""
    copied = object.__new__(type(record))
    copied.__dict__.update(record.__dict__, **changes)
    return copied


class Reason(StrEnum):
    """Why a command was rejected: machine-readable, part of the API contract."""

    INSUFFICIENT_STOCK = "insufficient_stock"
    OVER_RELEASE = "over_release"
    VERSION_CONFLICT = "version_conflict"
    DUPLICATE_SKU = "duplicate_sku"
    UNKNOWN_ITEM = "unknown_item"
    INVALID = "invalid"
    # A store's day (transfers, counts, reservations): app/domain/transfers.py, reservations.py.
    SAME_LOCATION = "same_location"
    COUNT_BELOW_RESERVED = "count_below_reserved"
    UNKNOWN_TRANSFER = "unknown_transfer"
    TRANSFER_CLOSED = "transfer_closed"
    OVER_RECEIPT = "over_receipt"
    UNKNOWN_RESERVATION = "unknown_reservation"
    RESERVATION_CLOSED = "reservation_closed"
    RESERVATION_EXPIRED = "reservation_expired"
    NOT_DUE = "not_due"


class AdjustmentReason(StrEnum):
    """Why on-hand stock changed: a closed list that loss-prevention reads (docs/decisions.md).

    ``count`` and ``transit_loss`` are recorded by the listener (a count, a short receipt); people
    choose among the others.
    """

    RECEIVED = "received"
    SOLD = "sold"
    RETURNED = "returned"
    DAMAGED = "damaged"
    LOST = "lost"
    THEFT = "theft"
    CORRECTION = "correction"
    COUNT = "count"
    TRANSIT_LOSS = "transit_loss"


# What a person may give an adjustment, and which way each one moves stock (None: either way).
CHOSEN_REASONS: dict[AdjustmentReason, int | None] = {
    AdjustmentReason.RECEIVED: 1,
    AdjustmentReason.SOLD: -1,
    AdjustmentReason.RETURNED: 1,
    AdjustmentReason.DAMAGED: -1,
    AdjustmentReason.LOST: -1,
    AdjustmentReason.THEFT: -1,
    AdjustmentReason.CORRECTION: None,
}


@dataclass(frozen=True)
class StockLevel:
    location: str
    quantity: int = 0
    reserved: int = 0
    version: int = 0
    updated_at: str = ""
    # The level's stock alert state (app/domain/alerts.py), kept by the listener. None: a level
    # not stored yet (or read by a reader that does not need it); its first change starts it
    # from ``initial_state``, without an alert.
    alert: AlertState | None = None

    @property
    def available(self) -> int:
        return self.quantity - self.reserved

    def holds_invariant(self) -> bool:
        return 0 <= self.reserved <= self.quantity <= MAX_LEVEL_QUANTITY


class TransferState(StrEnum):
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Transfer:
    """Units of one item on their way from one location to another.

    A one-step transfer is born received; a shipped one is in transit until it is received
    (perhaps short: the shortfall is a ``transit_loss``) or cancelled (the units go back).
    """

    id: str
    item_id: str
    from_location: str
    to_location: str
    quantity: int
    state: TransferState
    shipped_at: str
    received: int = 0
    closed_at: str | None = None
    note: str | None = None

    @property
    def open(self) -> bool:
        return self.state is TransferState.IN_TRANSIT


class ReservationState(StrEnum):
    OPEN = "open"
    COMMITTED = "committed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    # Given back by an anonymous release (app/domain/reservations.py).
    RELEASED = "released"


@dataclass(frozen=True)
class Reservation:
    """Units held at one location for an order or a customer, until committed (sold), cancelled,
    released or expired. ``quantity`` is what it holds now; ``reserved`` what it held at first."""

    id: str
    item_id: str
    location: str
    quantity: int
    reserved: int
    state: ReservationState
    created_at: str
    reference: str | None = None
    expires_at: str | None = None
    closed_at: str | None = None
    # The order it was stored in (None: made by this batch, so newer than any stored one).
    seq: int | None = None

    @property
    def open(self) -> bool:
        return self.state is ReservationState.OPEN

    @property
    def anonymous(self) -> bool:
        """Made by a plain reserve: a plain release may give its units back."""
        return self.reference is None and self.expires_at is None


@dataclass(frozen=True)
class Item:
    """An item, its chain totals and the parts of it a command needs.

    ``levels``, ``transfers`` and ``reservations`` hold only what was loaded (what a command
    touches), never necessarily all of it: the totals are kept on the item itself and moved by
    each change, so a reserve at one store costs the same at 5 stores and at 500.
    """

    id: str
    sku: str
    name: str
    description: str
    version: int
    created_at: str
    updated_at: str
    deleted_at: str | None = None
    levels: dict[str, StockLevel] = field(default_factory=dict)
    # Available at or below this is "low stock" on the wall; None means the global default.
    low_stock_threshold: int | None = None
    # Chain totals over every location. Left out (None), they are the sum of ``levels``: an
    # item built with all of its levels, as tests and a fresh create do.
    quantity: int = None  # type: ignore[assignment]
    reserved: int = None  # type: ignore[assignment]
    # Units shipped and not yet received or cancelled, over every open transfer.
    in_transit: int = 0
    transfers: dict[str, Transfer] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.quantity is None:
            object.__setattr__(self, "quantity", sum(level.quantity for level in self.levels.values()))
        if self.reserved is None:
            object.__setattr__(self, "reserved", sum(level.reserved for level in self.levels.values()))

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def available(self) -> int:
        return self.quantity - self.reserved

    def level(self, location: str) -> StockLevel:
        return self.levels.get(location) or StockLevel(location=location)


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    message: str


@dataclass(frozen=True)
class Movement:
    """What one change moved at one location: one line of the item's history."""

    location: str
    quantity_delta: int = 0
    reserved_delta: int = 0
    # Adjustments, counts and short receipts: why on-hand stock moved.
    reason: AdjustmentReason | None = None
    # The transfer or reservation the change belongs to.
    reference: str | None = None
    # Counts: what was on hand before the count; receipts: what was shipped.
    expected: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class Applied:
    """The item after the change, what moved where (for the audit trail), and the transfers and
    reservations it made or changed. ``changed`` is False for an idempotent repeat."""

    item: Item
    movements: tuple[Movement, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    reservations: tuple[Reservation, ...] = ()
    changed: bool = True


Decision = Applied | Rejected


def _check_version(item: Item, expected_version: int | None) -> Rejected | None:
    if expected_version is not None and expected_version != item.version:
        return Rejected(
            Reason.VERSION_CONFLICT,
            f"expected version {expected_version}, item is at version {item.version}",
        )
    return None


def _changeable(item: Item | None, expected_version: int | None) -> Item | Rejected:
    """The item a command may change: it exists, and is at the version the command expects."""
    if item is None or item.deleted:
        return Rejected(Reason.UNKNOWN_ITEM, "item does not exist")
    if conflict := _check_version(item, expected_version):
        return conflict
    return item


def create_item(
    *,
    existing: Item | None,
    sku_owner: str | None,
    item_id: str,
    sku: str,
    name: str,
    description: str,
    quantity: int,
    location: str,
    now: str,
    low_stock_threshold: int | None = None,
) -> Decision:
    if existing is not None:
        return Rejected(Reason.INVALID, "an item with this id already exists")
    if sku_owner is not None and sku_owner != item_id:
        return Rejected(Reason.DUPLICATE_SKU, f"sku {sku!r} is already taken")
    if not 0 <= quantity <= MAX_COMMAND_QUANTITY:
        return Rejected(Reason.INVALID, "quantity out of range")
    level = StockLevel(location=location, quantity=quantity, reserved=0, version=1, updated_at=now)
    item = Item(
        id=item_id,
        sku=sku,
        name=name,
        description=description,
        version=1,
        created_at=now,
        updated_at=now,
        levels={location: level},
        low_stock_threshold=low_stock_threshold,
    )
    return Applied(item=item, movements=(Movement(location, quantity_delta=quantity),))


def update_item(
    item: Item | None,
    *,
    name: str,
    description: str,
    expected_version: int | None,
    now: str,
    low_stock_threshold: int | None = None,
) -> Decision:
    live = _changeable(item, expected_version)
    if isinstance(live, Rejected):
        return live
    changed = replace(
        live,
        name=name,
        description=description,
        low_stock_threshold=low_stock_threshold,
        version=live.version + 1,
        updated_at=now,
    )
    return Applied(item=changed)


def delete_item(item: Item | None, *, expected_version: int | None, now: str) -> Decision:
    live = _changeable(item, expected_version)
    if isinstance(live, Rejected):
        return live
    return Applied(item=replace(live, deleted_at=now, version=live.version + 1, updated_at=now))


def with_level(item: Item, level: StockLevel, now: str, *, in_transit_delta: int = 0) -> Item:
    """The item with one level replaced: its totals move by what the level moved. Every change
    bumps the item's version once, however many levels it replaces (see ``with_levels``)."""
    return with_levels(item, (level,), now, in_transit_delta=in_transit_delta)


def with_levels(item: Item, levels: tuple[StockLevel, ...], now: str, *, in_transit_delta: int = 0) -> Item:
    merged = dict(item.levels)
    quantity, reserved = item.quantity, item.reserved
    for level in levels:
        before = item.level(level.location)
        merged[level.location] = level
        quantity += level.quantity - before.quantity
        reserved += level.reserved - before.reserved
    return evolve(
        item,
        levels=merged,
        quantity=quantity,
        reserved=reserved,
        in_transit=item.in_transit + in_transit_delta,
        version=item.version + 1,
        updated_at=now,
    )


def moved(level: StockLevel, now: str, *, quantity: int = 0, reserved: int = 0) -> StockLevel:
    """The level after a change of ``quantity`` on hand and ``reserved`` held."""
    return evolve(
        level,
        quantity=level.quantity + quantity,
        reserved=level.reserved + reserved,
        version=level.version + 1,
        updated_at=now,
    )


def live_item(item: Item | None, expected_version: int | None) -> Item | Rejected:
    return _changeable(item, expected_version)


def adjust_stock(
    item: Item | None,
    *,
    location: str,
    delta: int,
    expected_version: int | None,
    now: str,
    reason: AdjustmentReason = AdjustmentReason.CORRECTION,
    note: str | None = None,
) -> Decision:
    live = _changeable(item, expected_version)
    if isinstance(live, Rejected):
        return live
    if delta == 0 or abs(delta) > MAX_COMMAND_QUANTITY:
        return Rejected(Reason.INVALID, "adjustment must be non-zero and within range")
    level = live.level(location)
    new_quantity = level.quantity + delta
    if new_quantity < level.reserved:
        return Rejected(
            Reason.INSUFFICIENT_STOCK,
            f"cannot remove {-delta} at {location}: {level.quantity} on hand, {level.reserved} reserved",
        )
    if new_quantity > MAX_LEVEL_QUANTITY:
        return Rejected(Reason.INVALID, "resulting quantity exceeds the maximum level")
    movement = Movement(location, quantity_delta=delta, reason=reason, note=note)
    return Applied(item=with_level(live, moved(level, now, quantity=delta), now), movements=(movement,))


def count_stock(
    item: Item | None, *, location: str, counted: int, expected_version: int | None, now: str, note: str | None = None
) -> Decision:
    """A shelf count replaces the figure; the difference is an adjustment with reason ``count``."""
    live = _changeable(item, expected_version)
    if isinstance(live, Rejected):
        return live
    if not 0 <= counted <= MAX_LEVEL_QUANTITY:
        return Rejected(Reason.INVALID, "counted quantity out of range")
    level = live.level(location)
    if counted < level.reserved:
        return Rejected(
            Reason.COUNT_BELOW_RESERVED,
            f"counted {counted} at {location} but {level.reserved} are reserved there: the reservations could not "
            "be honoured. Cancel or release reservations first, or recount.",
        )
    movement = Movement(
        location,
        quantity_delta=counted - level.quantity,
        reason=AdjustmentReason.COUNT,
        expected=level.quantity,
        note=note,
    )
    new_level = evolve(level, quantity=counted, version=level.version + 1, updated_at=now)
    return Applied(item=with_level(live, new_level, now), movements=(movement,))
