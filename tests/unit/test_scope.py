"""Which commands a store-limited user may send (app/domain/scope.py): pure rules over the
catalogue's declarations and the checked request."""

from __future__ import annotations

import uuid

import pytest

from app.domain import scope
from app.domain.catalogue import BY_NAME, CommandRequest, Places
from app.domain.scope import RecordPlaces

PLACES = Places(("MAIN", "S001", "S002"), "MAIN")
ITEM = str(uuid.uuid4())
RECORD = str(uuid.uuid4())
S001 = frozenset({"S001"})


def command(command_name: str, /, **values: object) -> CommandRequest:
    return BY_NAME[command_name].check(values, item_id=ITEM, places=PLACES)


def refusal(
    command_name: str, allowed: frozenset[str], record: RecordPlaces | None = None, /, **values: object
) -> str | None:
    """The reason a user limited to ``allowed`` may not send the command; None when it may."""
    found = scope.refusal(BY_NAME[command_name], command(command_name, **values), allowed, record)
    return found.reason if found is not None else None


STOCK_AT = {
    "adjust": {"quantity": -1, "reason": "damaged"},
    "count": {"counted": 3},
    "reserve": {"quantity": 1},
    "release": {"quantity": 1},
}


@pytest.mark.parametrize("name", sorted(STOCK_AT))
def test_a_stock_command_needs_its_location(name: str) -> None:
    assert refusal(name, S001, location="S001", **STOCK_AT[name]) is None
    assert refusal(name, S001, location="S002", **STOCK_AT[name]) == scope.LOCATION_NOT_ALLOWED
    # No location: the default one (MAIN), which S001's user may not act at either.
    assert refusal(name, S001, **STOCK_AT[name]) == scope.LOCATION_NOT_ALLOWED


def test_the_refusal_names_the_location_and_the_users_locations() -> None:
    found = scope.refusal(BY_NAME["count"], command("count", counted=1, location="S002"), S001)
    assert found is not None
    assert found.location == "S002"
    assert "S002" in found.message and "S001" in found.message


@pytest.mark.parametrize("name", ["transfer", "ship"])
def test_a_transfer_or_shipment_needs_its_from_location(name: str) -> None:
    assert refusal(name, S001, quantity=1, from_location="S001", to_location="S002") is None
    assert refusal(name, S001, quantity=1, from_location="MAIN", to_location="S001") == scope.LOCATION_NOT_ALLOWED


def test_receive_needs_the_transfers_to_location_and_cancel_its_from_location() -> None:
    inbound = RecordPlaces("MAIN", "S001")
    outbound = RecordPlaces("S001", "S002")
    assert refusal("receive", S001, inbound, transfer_id=RECORD) is None
    assert refusal("receive", S001, outbound, transfer_id=RECORD) == scope.LOCATION_NOT_ALLOWED
    assert refusal("cancel-transfer", S001, outbound, transfer_id=RECORD) is None
    assert refusal("cancel-transfer", S001, inbound, transfer_id=RECORD) == scope.LOCATION_NOT_ALLOWED


@pytest.mark.parametrize("name", ["commit-reservation", "cancel-reservation"])
def test_a_reservation_command_needs_the_reservations_location(name: str) -> None:
    assert refusal(name, S001, RecordPlaces("S001", "S001"), reservation_id=RECORD) is None
    assert refusal(name, S001, RecordPlaces("S002", "S002"), reservation_id=RECORD) == scope.LOCATION_NOT_ALLOWED


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("receive", {"transfer_id": RECORD}),
        ("cancel-transfer", {"transfer_id": RECORD}),
        ("commit-reservation", {"reservation_id": RECORD}),
        ("cancel-reservation", {"reservation_id": RECORD}),
    ],
)
def test_a_record_not_known_yet_is_refused_for_a_limited_user_only(name: str, values: dict[str, object]) -> None:
    assert refusal(name, S001, None, **values) == scope.RECORD_NOT_KNOWN_YET
    assert refusal(name, frozenset(), None, **values) is None


@pytest.mark.parametrize(
    ("name", "values"),
    [("create", {"sku": "MUG-1", "name": "Mug", "location": "S001"}), ("edit", {"name": "Mug"}), ("delete", {})],
)
def test_catalogue_commands_need_every_location(name: str, values: dict[str, object]) -> None:
    assert refusal(name, S001, **values) == scope.EVERY_LOCATION_NEEDED
    assert refusal(name, frozenset({"MAIN", "S001", "S002"}), **values) == scope.EVERY_LOCATION_NEEDED
    assert refusal(name, frozenset(), **values) is None


def test_a_user_with_every_location_may_send_anything() -> None:
    assert refusal("ship", frozenset(), quantity=1, from_location="S002", to_location="S001") is None
    assert refusal("count", frozenset(), counted=1, location="S002") is None


def test_only_receive_cancel_and_commit_name_an_existing_record() -> None:
    named = {name for name, spec in BY_NAME.items() if spec.record is not None and not spec.internal}
    with_id = {name for name in named if scope.named_record(BY_NAME[name], command(name, **_sample(name))) is not None}
    assert with_id == {"receive", "cancel-transfer", "commit-reservation", "cancel-reservation"}


def _sample(name: str) -> dict[str, object]:
    samples: dict[str, dict[str, object]] = {
        "transfer": {"quantity": 1, "from_location": "S001", "to_location": "S002"},
        "ship": {"quantity": 1, "from_location": "S001", "to_location": "S002"},
        "reserve": {"quantity": 1},
        "receive": {"transfer_id": RECORD},
        "cancel-transfer": {"transfer_id": RECORD},
        "commit-reservation": {"reservation_id": RECORD},
        "cancel-reservation": {"reservation_id": RECORD},
    }
    return samples[name]
