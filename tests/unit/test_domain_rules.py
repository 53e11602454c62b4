"""The rules of app/domain/model.py, on the pure domain model."""

from __future__ import annotations

import pytest

from app.domain import model, reservations
from app.domain.model import Applied, Item, Reason, Rejected, StockLevel

NOW = "2026-01-01T00:00:00.000Z"


def make_item(quantity: int = 10, reserved: int = 0, version: int = 1, location: str = "MAIN") -> Item:
    level = StockLevel(location, quantity, reserved, 1, NOW)
    return Item("i1", "SKU-1", "Thing", "", version, NOW, NOW, None, {location: level})


def applied(decision: model.Decision) -> Item:
    assert isinstance(decision, Applied), decision
    return decision.item


def rejected(decision: model.Decision) -> Reason:
    assert isinstance(decision, Rejected), decision
    return decision.reason


def test_create_starts_at_version_one_with_stock_at_its_location() -> None:
    item = applied(
        model.create_item(
            existing=None, sku_owner=None, item_id="i1", sku="A", name="n", description="",
            quantity=7, location="S001", now=NOW,
        )
    )  # fmt: skip
    assert item.version == 1
    assert item.levels["S001"].quantity == 7
    assert item.quantity == 7 and item.available == 7


def test_create_with_a_taken_sku_is_rejected() -> None:
    decision = model.create_item(
        existing=None, sku_owner="other", item_id="i1", sku="A", name="n", description="",
        quantity=0, location="MAIN", now=NOW,
    )  # fmt: skip
    assert rejected(decision) is Reason.DUPLICATE_SKU


def test_reserve_takes_from_available_and_bumps_versions() -> None:
    item = applied(
        reservations.reserve_stock(
            make_item(10), location="MAIN", quantity=4, expected_version=None, now=NOW, reservation_id="r1"
        )
    )
    level = item.levels["MAIN"]
    assert (level.quantity, level.reserved, level.available) == (10, 4, 6)
    assert item.version == 2 and level.version == 2


def test_reserve_more_than_available_is_insufficient_stock() -> None:
    decision = reservations.reserve_stock(
        make_item(10, reserved=8), location="MAIN", quantity=3, expected_version=None, now=NOW, reservation_id="r1"
    )
    assert rejected(decision) is Reason.INSUFFICIENT_STOCK


def test_reserve_at_a_location_without_stock_is_insufficient_stock() -> None:
    decision = reservations.reserve_stock(
        make_item(10), location="S001", quantity=1, expected_version=None, now=NOW, reservation_id="r1"
    )
    assert rejected(decision) is Reason.INSUFFICIENT_STOCK


def test_release_more_than_reserved_is_over_release() -> None:
    # A release gives back units of (anonymous) reservations: two units are reserved here.
    item = applied(
        reservations.reserve_stock(
            make_item(10), location="MAIN", quantity=2, expected_version=None, now=NOW, reservation_id="r1"
        )
    )
    assert item.levels["MAIN"].reserved == 2
    decision = reservations.release_stock(item, location="MAIN", quantity=3, expected_version=None, now=NOW)
    assert rejected(decision) is Reason.OVER_RELEASE


def test_adjust_cannot_take_quantity_below_what_is_reserved() -> None:
    decision = model.adjust_stock(make_item(10, reserved=6), location="MAIN", delta=-5, expected_version=None, now=NOW)
    assert rejected(decision) is Reason.INSUFFICIENT_STOCK
    item = applied(
        model.adjust_stock(make_item(10, reserved=6), location="MAIN", delta=-4, expected_version=None, now=NOW)
    )
    assert item.levels["MAIN"].quantity == 6 and item.levels["MAIN"].available == 0


def test_adjust_creates_a_level_at_a_new_location() -> None:
    item = applied(model.adjust_stock(make_item(10), location="S002", delta=5, expected_version=None, now=NOW))
    assert item.levels["S002"].quantity == 5 and item.levels["S002"].version == 1
    assert item.quantity == 15


def test_adjust_beyond_the_maximum_level_is_invalid() -> None:
    full = make_item(model.MAX_LEVEL_QUANTITY)
    decision = model.adjust_stock(full, location="MAIN", delta=1, expected_version=None, now=NOW)
    assert rejected(decision) is Reason.INVALID


@pytest.mark.parametrize(
    "decide",
    [
        lambda item: model.update_item(item, name="x", description="", expected_version=5, now=NOW),
        lambda item: model.delete_item(item, expected_version=5, now=NOW),
        lambda item: reservations.reserve_stock(
            item, location="MAIN", quantity=1, expected_version=5, now=NOW, reservation_id="r1"
        ),
        lambda item: reservations.release_stock(item, location="MAIN", quantity=1, expected_version=5, now=NOW),
        lambda item: model.adjust_stock(item, location="MAIN", delta=1, expected_version=5, now=NOW),
    ],
)
def test_a_stale_expected_version_is_a_version_conflict(decide) -> None:  # type: ignore[no-untyped-def]
    assert rejected(decide(make_item(version=4))) is Reason.VERSION_CONFLICT


def test_a_matching_expected_version_is_applied() -> None:
    applied(
        reservations.reserve_stock(
            make_item(version=4), location="MAIN", quantity=1, expected_version=4, now=NOW, reservation_id="r1"
        )
    )


def test_commands_on_a_deleted_or_missing_item_are_unknown_item() -> None:
    deleted = applied(model.delete_item(make_item(), expected_version=None, now=NOW))
    assert deleted.deleted
    assert (
        rejected(
            reservations.reserve_stock(
                deleted, location="MAIN", quantity=1, expected_version=None, now=NOW, reservation_id="r1"
            )
        )
        is Reason.UNKNOWN_ITEM
    )
    assert (
        rejected(model.update_item(None, name="x", description="", expected_version=None, now=NOW))
        is Reason.UNKNOWN_ITEM
    )


def test_every_applied_level_keeps_the_invariant() -> None:
    item = make_item(5)
    for step in range(200):
        decision = (
            reservations.reserve_stock(
                item, location="MAIN", quantity=1 + step % 3, expected_version=None, now=NOW, reservation_id=f"r{step}"
            )
            if step % 2
            else model.adjust_stock(item, location="MAIN", delta=-(step % 4) or 1, expected_version=None, now=NOW)
        )
        if isinstance(decision, Applied):
            item = decision.item
        assert all(level.holds_invariant() for level in item.levels.values())


def test_a_change_at_one_level_moves_the_chain_totals_without_the_other_levels() -> None:
    # Loaded as the listener loads it: the totals from the item row, only the level it touches.
    level = StockLevel("S001", 10, 2, 3, NOW)
    item = Item("i1", "SKU-1", "Thing", "", 7, NOW, NOW, None, {"S001": level}, quantity=500, reserved=40)
    reserved = applied(
        reservations.reserve_stock(
            item, location="S001", quantity=3, expected_version=None, now=NOW, reservation_id="r1"
        )
    )
    assert (reserved.quantity, reserved.reserved, reserved.available) == (500, 43, 457)
    adjusted = applied(model.adjust_stock(reserved, location="S002", delta=5, expected_version=None, now=NOW))
    assert (adjusted.quantity, adjusted.reserved) == (505, 43)
    assert set(adjusted.levels) == {"S001", "S002"} and adjusted.levels["S002"].quantity == 5
