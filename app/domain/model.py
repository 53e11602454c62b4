"""Items and stock levels, and the rules every change must keep.

Pure: no I/O, no framework. The listener loads aggregates, asks these functions what a
command does to them, and writes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

NAME_MAX = 200
DESCRIPTION_MAX = 2000
REASON_MAX = 200
# One command moves at most a billion units; a level holds at most a trillion. Both are far
# beyond a shop's needs and keep every figure exact in JSON numbers and SQLite integers.
MAX_COMMAND_QUANTITY = 1_000_000_000
MAX_LEVEL_QUANTITY = 1_000_000_000_000


class Reason(StrEnum):
    """Why a command was rejected: machine-readable, part of the API contract."""

    INSUFFICIENT_STOCK = "insufficient_stock"
    OVER_RELEASE = "over_release"
    VERSION_CONFLICT = "version_conflict"
    DUPLICATE_SKU = "duplicate_sku"
    UNKNOWN_ITEM = "unknown_item"
    INVALID = "invalid"


@dataclass(frozen=True)
class StockLevel:
    location: str
    quantity: int = 0
    reserved: int = 0
    version: int = 0
    updated_at: str = ""

    @property
    def available(self) -> int:
        return self.quantity - self.reserved

    def holds_invariant(self) -> bool:
        return 0 <= self.reserved <= self.quantity <= MAX_LEVEL_QUANTITY


@dataclass(frozen=True)
class Item:
    """An item, its chain totals and the levels a command needs.

    ``levels`` holds only the levels that were loaded (the ones a command touches), never
    necessarily all of them: the totals are kept on the item itself and moved by each change, so
    a reserve at one store costs the same at 5 stores and at 500.
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
class Applied:
    """The item after the change, and what moved at which location (for the audit trail)."""

    item: Item
    location: str | None = None
    quantity_delta: int = 0
    reserved_delta: int = 0


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
    return Applied(item=item, location=location, quantity_delta=quantity)


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


def _with_level(item: Item, level: StockLevel, now: str) -> Item:
    """The item with one level replaced: its totals move by what the level moved."""
    before = item.level(level.location)
    levels = dict(item.levels)
    levels[level.location] = level
    return replace(
        item,
        levels=levels,
        quantity=item.quantity + level.quantity - before.quantity,
        reserved=item.reserved + level.reserved - before.reserved,
        version=item.version + 1,
        updated_at=now,
    )


def adjust_stock(item: Item | None, *, location: str, delta: int, expected_version: int | None, now: str) -> Decision:
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
    new_level = replace(level, quantity=new_quantity, version=level.version + 1, updated_at=now)
    return Applied(item=_with_level(live, new_level, now), location=location, quantity_delta=delta)


def reserve_stock(
    item: Item | None, *, location: str, quantity: int, expected_version: int | None, now: str
) -> Decision:
    live = _changeable(item, expected_version)
    if isinstance(live, Rejected):
        return live
    if not 1 <= quantity <= MAX_COMMAND_QUANTITY:
        return Rejected(Reason.INVALID, "quantity out of range")
    level = live.level(location)
    if quantity > level.available:
        return Rejected(
            Reason.INSUFFICIENT_STOCK,
            f"cannot reserve {quantity} at {location}: {level.available} available",
        )
    new_level = replace(level, reserved=level.reserved + quantity, version=level.version + 1, updated_at=now)
    return Applied(item=_with_level(live, new_level, now), location=location, reserved_delta=quantity)


def release_stock(
    item: Item | None, *, location: str, quantity: int, expected_version: int | None, now: str
) -> Decision:
    live = _changeable(item, expected_version)
    if isinstance(live, Rejected):
        return live
    if not 1 <= quantity <= MAX_COMMAND_QUANTITY:
        return Rejected(Reason.INVALID, "quantity out of range")
    level = live.level(location)
    if quantity > level.reserved:
        return Rejected(
            Reason.OVER_RELEASE,
            f"cannot release {quantity} at {location}: only {level.reserved} reserved",
        )
    new_level = replace(level, reserved=level.reserved - quantity, version=level.version + 1, updated_at=now)
    return Applied(item=_with_level(live, new_level, now), location=location, reserved_delta=-quantity)
