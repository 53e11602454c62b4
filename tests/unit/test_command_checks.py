"""Checking client input before publishing: every broken rule is reported, per field."""

from __future__ import annotations

import pytest

from app.domain.catalogue import BY_NAME, InvalidCommand, Places, check_expected_version, check_item_id

PLACES = Places(("MAIN", "S001"), "MAIN")


def fields_of(exc: pytest.ExceptionInfo[InvalidCommand]) -> set[str]:
    return {error.field for error in exc.value.errors}


def test_create_reports_every_broken_field_at_once() -> None:
    with pytest.raises(InvalidCommand) as exc:
        BY_NAME["create"].check(
            {"sku": "has space", "name": "", "description": "d" * 2001, "quantity": -1, "location": "MARS"},
            item_id="x", places=PLACES,
        )  # fmt: skip
    assert fields_of(exc) == {"sku", "name", "description", "quantity", "location"}


def test_create_defaults_to_the_default_location_and_trims_text() -> None:
    request = BY_NAME["create"].check(
        {"sku": " A-1 ", "name": "  Widget ", "description": None, "quantity": 0, "location": None},
        item_id="x", places=PLACES,
    )  # fmt: skip
    assert request.location == "MAIN"
    assert request.data.sku == "A-1" and request.data.name == "Widget"  # type: ignore[union-attr]


def test_location_codes_are_case_insensitive() -> None:
    request = BY_NAME["reserve"].check({"quantity": 1, "location": "s001"}, item_id="x", places=PLACES)
    assert request.location == "S001"


@pytest.mark.parametrize("quantity", [0, -1, 1_000_000_001])
def test_reserve_needs_a_positive_bounded_quantity(quantity: int) -> None:
    with pytest.raises(InvalidCommand) as exc:
        BY_NAME["reserve"].check({"quantity": quantity, "location": None}, item_id="x", places=PLACES)
    assert fields_of(exc) == {"quantity"}


def test_adjust_needs_a_non_zero_change() -> None:
    with pytest.raises(InvalidCommand):
        BY_NAME["adjust"].check({"quantity": 0, "location": None, "reason": None}, item_id="x", places=PLACES)


def test_control_characters_are_refused_in_names() -> None:
    with pytest.raises(InvalidCommand) as exc:
        BY_NAME["edit"].check({"name": "bad\x00name", "description": None}, item_id="x", places=PLACES)
    assert fields_of(exc) == {"name"}


@pytest.mark.parametrize(("header", "expected"), [(None, None), ("3", 3), ('"3"', 3), ('W/"12"', 12), ("*", None)])
def test_if_match_carries_the_expected_version(header: str | None, expected: int | None) -> None:
    assert check_expected_version(header) == expected


@pytest.mark.parametrize("header", ["abc", "-1", "1.5", "9" * 30])
def test_a_malformed_if_match_is_refused(header: str) -> None:
    with pytest.raises(InvalidCommand):
        check_expected_version(header)


def test_item_ids_must_be_uuids() -> None:
    with pytest.raises(InvalidCommand):
        check_item_id("123")
    assert check_item_id("6F9619FF-8B86-D011-B42D-00C04FC964FF") == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
