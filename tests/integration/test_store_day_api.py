"""A store's day through the real split stack (command, listener and query processes on Kafka
and Redis): transfers, counts, adjustments with reasons, and reservations that are committed,
cancelled or expire by themselves. Every bad input is a 4xx or a rejection with its reason, and
changes nothing.

One stack serves the whole module (starting one takes longer than all its tests); every test
makes its own items.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.domain import ids
from app.listener.expiry import EXPIRY_ACTOR
from tests.support.events import query
from tests.support.processes import run_cli
from tests.support.services import RedisServer
from tests.support.stack import Stack, split_stack
from tests.support.store_day import history_lines, invariant_problems
from tests.support.waiting import wait_until

ITEMS = "/api/v1/inventory/items"
UNKNOWN_ID = "6d1f0c6e-3b7a-4c59-9a8e-2f4b5c6d7e8f"
THIRTY_DAYS = 30 * 24 * 3600


class DayApi:
    """curl-like calls to the stack, as a till or a back-office screen makes them."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(timeout=40)
        self.auth = stack.token()
        self.db = stack.data_dir / "inventory.db"

    # --- commands ---------------------------------------------------------------------------

    def create(self, quantity: int = 20, **elsewhere: int) -> str:
        """An item with ``quantity`` at MAIN and the given units at other locations."""
        item = self.stack.create_item(self.auth, sku=f"DAY-{uuid.uuid4().hex[:10]}", name="Day", quantity=quantity)
        for location, units in elsewhere.items():
            self.applied(item["id"], "adjust", {"quantity": units, "location": location, "reason": "received"})
        return str(item["id"])

    def post(self, item_id: str, name: str, body: Any, *, wait: bool = True) -> httpx.Response:
        headers = {**self.auth, **({"Prefer": "wait=10"} if wait else {})}
        return self.client.post(f"{self.stack.command.url}{ITEMS}/{item_id}/{name}", json=body, headers=headers)

    def outcome(self, response: httpx.Response) -> tuple[str, str | None]:
        """How the command ended, whether the answer waited for it (200, 409) or not (202)."""
        if response.status_code in (200, 201):
            return "applied", None
        if response.status_code in (404, 409) and response.json()["error"] == "CommandRejected":
            return "rejected", response.json()["details"]["reason"]
        assert response.status_code == 202, response.text
        status = self.status(response.json()["command_id"], settled=True)
        return status["status"], status.get("reason")

    def status(self, command_id: str, *, settled: bool = False) -> dict[str, Any]:
        url = f"{self.stack.command.url}/api/v1/commands/{command_id}"

        def answer() -> dict[str, Any] | None:
            response = self.client.get(url, headers=self.auth)
            assert response.status_code in (200, 404), response.text
            body = dict(response.json())
            return body if response.status_code == 200 and (not settled or body["status"] != "pending") else None

        found = wait_until(answer, timeout=60, interval=0.1)
        assert found is not None
        return found

    def applied(self, item_id: str, name: str, body: Any) -> httpx.Response:
        response = self.post(item_id, name, body)
        assert self.outcome(response) == ("applied", None), response.text
        return response

    def rejected(self, item_id: str, name: str, body: Any) -> tuple[str | None, httpx.Response]:
        response = self.post(item_id, name, body)
        assert response.status_code < 500, response.text
        status, reason = self.outcome(response)
        assert status == "rejected", response.text
        return reason, response

    # --- reads ------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(f"{self.stack.query.url}/api/v1/inventory{path}", params=params, headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    def item(self, item_id: str) -> dict[str, Any]:
        return dict(self.get(f"/items/{item_id}"))

    def levels(self, item_id: str) -> dict[str, tuple[int, int]]:
        return {lv["location"]: (lv["quantity"], lv["reserved"]) for lv in self.item(item_id)["locations"]}

    def history(self, item_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/items/{item_id}/history", limit=200)["entries"])

    def transfers(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.get("/transfers", page_size=200, **params)["transfers"])

    def reservations(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.get("/reservations", page_size=200, **params)["reservations"])

    def reservation(self, reservation_id: str, item_id: str) -> dict[str, Any]:
        (found,) = [r for r in self.reservations(item_id=item_id) if r["id"] == reservation_id]
        return found

    def metric(self, url: str, name: str, **labels: str) -> float:
        """A counter's value on one process (0 before it was first counted)."""
        for line in self.client.get(f"{url}/metrics").text.splitlines():
            found = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
            if found and dict(re.findall(r'(\w+)="([^"]*)"', found.group(1))) == labels:
                return float(found.group(2))
        return 0.0

    # --- nothing changed ------------------------------------------------------------------------

    def snapshot(self, item_id: str) -> dict[str, Any]:
        item = self.item(item_id)
        return {
            "version": item["version"],
            "totals": (item["quantity"], item["reserved"], item["in_transit"]),
            "levels": {lv["location"]: (lv["quantity"], lv["reserved"]) for lv in item["locations"]},
            "transfers": sorted((t["id"], t["state"], t["received"]) for t in self.transfers(item_id=item_id)),
            "reservations": sorted((r["id"], r["state"], r["quantity"]) for r in self.reservations(item_id=item_id)),
            "history": len(self.history(item_id)),
        }

    def assert_unchanged(self, item_id: str, before: dict[str, Any]) -> None:
        """Nothing the test sent changed the item: a marker sent after it (one unit returned at
        S002; the log keeps one item's commands in order, so anything sent before the marker is
        applied before it) is the only change since ``before``."""
        self.applied(item_id, "adjust", {"quantity": 1, "location": "S002", "reason": "returned"})
        quantity, reserved, in_transit = before["totals"]
        at_s002 = before["levels"].get("S002", (0, 0))
        expected = {
            **before,
            "version": before["version"] + 1,
            "totals": (quantity + 1, reserved, in_transit),
            "levels": {**before["levels"], "S002": (at_s002[0] + 1, at_s002[1])},
            "history": before["history"] + 1,
        }
        assert self.snapshot(item_id) == expected

    def close(self) -> None:
        self.client.close()


@pytest.fixture(scope="module")
def day(kafka_bootstrap: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DayApi]:
    root = tmp_path_factory.mktemp("store-day")
    (root / "data").mkdir()
    with split_stack(kafka_bootstrap, redis_server.url, root / "data", root) as stack:
        api = DayApi(stack)
        try:
            yield api
        finally:
            api.close()
    # Whatever the module did, the database keeps every invariant of a store's day.
    assert invariant_problems(root / "data" / "inventory.db") == []


def field_errors(response: httpx.Response) -> set[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "ValidationError", body
    return {detail["field"] for detail in body["details"]}


def assert_refused(day: DayApi, response: httpx.Response, *, field: str, reason: str | None = None) -> None:
    """Refused at the door (a 400 naming ``field``) or, for a rule that needs the item's state or
    the time the command was submitted, by the listener (a rejection with ``reason``)."""
    if response.status_code == 400 or reason is None:
        assert field in field_errors(response)
        return
    assert day.outcome(response) == ("rejected", reason), response.text


# --- transfers -------------------------------------------------------------------------------


def test_a_one_step_transfer_moves_both_levels_at_once(day: DayApi) -> None:
    item = day.create(20)
    accepted = day.post(item, "transfer", {"quantity": 7, "from_location": "MAIN", "to_location": "S001"}, wait=False)
    assert accepted.status_code == 202
    transfer_id = accepted.json()["transfer_id"]
    assert accepted.headers["X-Transfer-ID"] == transfer_id == ids.transfer_id(accepted.json()["command_id"])
    assert day.outcome(accepted) == ("applied", None)

    assert day.levels(item) == {"MAIN": (13, 0), "S001": (7, 0)}
    got = day.item(item)
    assert (got["quantity"], got["in_transit"]) == (20, 0)
    (listed,) = day.transfers(item_id=item)
    assert listed["id"] == transfer_id
    assert (listed["state"], listed["quantity"], listed["received"]) == ("received", 7, 7)
    moved = [e for e in day.history(item) if e["reference"] == transfer_id]
    assert sorted((e["location"], e["quantity_delta"]) for e in moved) == [("MAIN", -7), ("S001", 7)]
    assert {e["command_id"] for e in moved} == {accepted.json()["command_id"]}


def test_a_shipment_is_in_transit_until_received_and_a_short_receipt_is_a_transit_loss(day: DayApi) -> None:
    item = day.create(20)
    losses = day.metric(day.stack.listener.url, "inventory_adjustments_total", reason="transit_loss")
    shipped = day.applied(item, "ship", {"quantity": 8, "from_location": "MAIN", "to_location": "S001", "note": "van"})
    transfer_id = shipped.headers["X-Transfer-ID"]
    got = day.item(item)
    assert (got["quantity"], got["in_transit"]) == (12, 8)
    assert day.levels(item) == {"MAIN": (12, 0)}
    in_transit = day.transfers(state="in_transit", location="S001")
    assert transfer_id in {t["id"] for t in in_transit}
    assert transfer_id in {t["id"] for t in day.transfers(state="in_transit", location="MAIN")}
    assert transfer_id not in {t["id"] for t in day.transfers(state="in_transit", location="S002")}
    assert transfer_id not in {t["id"] for t in day.transfers(state="received", item_id=item)}

    day.applied(item, "receive", {"transfer_id": transfer_id, "received": 6})
    got = day.item(item)
    assert (got["quantity"], got["in_transit"]) == (18, 0)
    assert day.levels(item) == {"MAIN": (12, 0), "S001": (6, 0)}
    (listed,) = day.transfers(item_id=item)
    assert (listed["state"], listed["received"], listed["quantity"]) == ("received", 6, 8)
    (receipt,) = [e for e in day.history(item) if e["type"] == "inventory.stock.transfer_received"]
    assert receipt["reason"] == "transit_loss" and receipt["expected"] == 8 and receipt["quantity_delta"] == 6
    assert receipt["location"] == "S001" and receipt["reference"] == transfer_id
    after = day.metric(day.stack.listener.url, "inventory_adjustments_total", reason="transit_loss")
    assert after == losses + 1


def test_a_cancelled_transfer_gives_the_units_back(day: DayApi) -> None:
    item = day.create(20)
    transfer_id = day.applied(item, "ship", {"quantity": 5, "from_location": "MAIN", "to_location": "S002"}).headers[
        "X-Transfer-ID"
    ]
    assert day.item(item)["in_transit"] == 5
    cancelled = day.applied(item, "cancel-transfer", {"transfer_id": transfer_id, "note": "van broke down"})
    assert cancelled.headers["X-Transfer-ID"] == transfer_id
    got = day.item(item)
    assert (got["quantity"], got["in_transit"]) == (20, 0)
    assert day.levels(item) == {"MAIN": (20, 0)}
    assert [t["state"] for t in day.transfers(item_id=item)] == ["cancelled"]
    assert day.transfers(item_id=item, state="cancelled", location="S002")[0]["id"] == transfer_id


# --- counts and adjustments ------------------------------------------------------------------


def test_a_count_replaces_the_figure_and_records_what_was_expected(day: DayApi) -> None:
    item = day.create(20)
    counts = day.metric(day.stack.listener.url, "inventory_adjustments_total", reason="count")
    day.applied(item, "count", {"counted": 17, "location": "MAIN", "note": "aisle 4"})
    assert day.levels(item) == {"MAIN": (17, 0)}
    entry = day.history(item)[0]
    assert (entry["type"], entry["reason"], entry["expected"]) == ("inventory.stock.counted", "count", 20)
    assert (entry["quantity_delta"], entry["quantity_after"], entry["note"]) == (-3, 17, "aisle 4")
    # A count at a location with nothing yet creates the level.
    day.applied(item, "count", {"counted": 4, "location": "S001"})
    assert day.levels(item) == {"MAIN": (17, 0), "S001": (4, 0)}
    assert day.history(item)[0]["expected"] == 0
    assert day.metric(day.stack.listener.url, "inventory_adjustments_total", reason="count") == counts + 2


def test_adjustment_reasons_are_in_the_history_and_in_the_metrics(day: DayApi) -> None:
    item = day.create(50)
    moves = {"received": 5, "sold": -2, "returned": 1, "damaged": -3, "lost": -1, "theft": -2, "correction": -4}
    before = {r: day.metric(day.stack.listener.url, "inventory_adjustments_total", reason=r) for r in moves}
    for reason, quantity in moves.items():
        day.applied(item, "adjust", {"quantity": quantity, "location": "MAIN", "reason": reason})
    day.applied(item, "adjust", {"quantity": 1, "location": "MAIN"})  # no reason: a correction
    entries = [e for e in day.history(item) if e["type"] == "inventory.stock.adjusted"]
    assert sorted((e["reason"], e["quantity_delta"]) for e in entries) == sorted([*moves.items(), ("correction", 1)])
    assert day.levels(item) == {"MAIN": (50 + sum(moves.values()) + 1, 0)}
    after = {r: day.metric(day.stack.listener.url, "inventory_adjustments_total", reason=r) for r in moves}
    assert {r: after[r] - before[r] for r in moves} == {**dict.fromkeys(moves, 1.0), "correction": 2.0}
    # A reason that contradicts the sign is refused before anything is published.
    snapshot = day.snapshot(item)
    assert field_errors(day.post(item, "adjust", {"quantity": 3, "reason": "theft"})) == {"quantity"}
    assert field_errors(day.post(item, "adjust", {"quantity": 3, "reason": "count"})) == {"reason"}
    day.assert_unchanged(item, snapshot)


# --- reservations ----------------------------------------------------------------------------


def test_the_same_reference_twice_reserves_once(day: DayApi) -> None:
    item = day.create(20)
    body = {"quantity": 3, "location": "MAIN", "reference": f"ORDER-{uuid.uuid4().hex[:8]}"}
    first = day.post(item, "reserve", body, wait=False)
    second = day.post(item, "reserve", body, wait=False)
    assert first.status_code == second.status_code == 202
    assert first.json()["command_id"] != second.json()["command_id"]
    reservation_id = first.json()["reservation_id"]
    assert second.json()["reservation_id"] == reservation_id == ids.reservation_id(item, "-", str(body["reference"]))
    assert first.headers["X-Reservation-ID"] == second.headers["X-Reservation-ID"] == reservation_id
    assert day.outcome(first) == day.outcome(second) == ("applied", None)

    assert day.levels(item) == {"MAIN": (20, 3)}
    (listed,) = day.reservations(reference=body["reference"])
    assert (listed["id"], listed["state"], listed["quantity"]) == (reservation_id, "open", 3)
    assert len([e for e in day.history(item) if e["type"] == "inventory.stock.reserved"]) == 1


def test_reserving_again_with_the_reference_of_a_closed_reservation_never_claims_to_hold_units(
    day: DayApi,
) -> None:
    """An order whose reservation was cancelled (or expired) reserves again with the same
    reference. The answer may refuse (the reference is used up) or hold the units again; it must
    not say "applied" while nothing is held."""
    item = day.create(10)
    body = {"quantity": 2, "reference": f"ORDER-{uuid.uuid4().hex[:8]}", "expires_in": 600}
    reservation_id = day.applied(item, "reserve", body).headers["X-Reservation-ID"]
    day.applied(item, "cancel-reservation", {"reservation_id": reservation_id})
    assert day.levels(item) == {"MAIN": (10, 0)}

    again = day.post(item, "reserve", body)
    status, reason = day.outcome(again)
    if status == "rejected":
        assert reason is not None
        return
    held = [r for r in day.reservations(reference=body["reference"]) if r["state"] == "open"]
    assert day.levels(item) == {"MAIN": (10, 2)} and len(held) == 1, (
        f"answered {again.status_code} applied, but MAIN is {day.levels(item)['MAIN']} and the reservation "
        f"{again.headers.get('X-Reservation-ID')} is {day.reservation(reservation_id, item)['state']}"
    )


def test_a_reservation_that_expires_gives_its_units_back_by_itself(day: DayApi) -> None:
    item = day.create(20, S001=10)
    reserved = day.applied(item, "reserve", {"quantity": 4, "location": "S001", "expires_in": 2})
    reservation_id = reserved.headers["X-Reservation-ID"]
    assert day.levels(item)["S001"] == (10, 4)
    held = day.reservation(reservation_id, item)
    assert held["state"] == "open" and held["expires_at"] is not None

    wait_until(lambda: day.reservation(reservation_id, item)["state"] == "expired", timeout=60, interval=0.2)
    assert day.levels(item)["S001"] == (10, 0)
    assert day.item(item)["reserved"] == 0
    expiry = day.history(item)[0]
    assert expiry["actor"] == EXPIRY_ACTOR == "system:expiry"
    assert (expiry["type"], expiry["reference"]) == ("inventory.stock.reservation_expired", reservation_id)
    assert (expiry["location"], expiry["quantity_delta"], expiry["reserved_delta"]) == ("S001", 0, -4)
    _, expiry_command = ids.expiry_ids(reservation_id)
    assert expiry["command_id"] == expiry_command
    assert day.status(expiry_command)["status"] == "applied"


def test_reservations_are_committed_and_cancelled_by_id(day: DayApi) -> None:
    item = day.create(20)
    sold = day.applied(item, "reserve", {"quantity": 3, "reference": "TILL-1"}).headers["X-Reservation-ID"]
    kept = day.applied(item, "reserve", {"quantity": 5, "expires_in": 600}).headers["X-Reservation-ID"]
    assert day.levels(item) == {"MAIN": (20, 8)}

    committed = day.applied(item, "commit-reservation", {"reservation_id": sold})
    assert committed.headers["X-Reservation-ID"] == sold
    assert day.levels(item) == {"MAIN": (17, 5)}
    day.applied(item, "cancel-reservation", {"reservation_id": kept})
    assert day.levels(item) == {"MAIN": (17, 0)}
    got = day.item(item)
    assert (got["quantity"], got["reserved"], got["available"]) == (17, 0, 17)
    assert day.reservation(sold, item)["state"] == "committed"
    assert day.reservation(kept, item)["state"] == "cancelled"
    commit = next(e for e in day.history(item) if e["type"] == "inventory.stock.reservation_committed")
    assert (commit["quantity_delta"], commit["reserved_delta"], commit["reference"]) == (-3, -3, sold)


def test_reservations_are_listed_by_item_location_reference_and_state(day: DayApi) -> None:
    item, other = day.create(20, S001=10), day.create(20)
    tag = uuid.uuid4().hex[:8]
    wanted = [("a", item, "MAIN"), ("b", item, "S001"), ("c", item, "S001"), ("d", other, "MAIN")]
    made = {
        name: day.applied(item_id, "reserve", {"quantity": 1, "location": at, "reference": f"{tag}-{name}"}).headers[
            "X-Reservation-ID"
        ]
        for name, item_id, at in wanted
    }
    day.applied(item, "cancel-reservation", {"reservation_id": made["c"]})

    def listed(**params: Any) -> set[str]:
        return {r["id"] for r in day.reservations(**params)}

    assert listed(item_id=item) == {made["a"], made["b"], made["c"]}
    assert listed(item_id=item, location="S001") == {made["b"], made["c"]}
    assert listed(item_id=item, state="open") == {made["a"], made["b"]}
    assert listed(item_id=item, location="S001", state="cancelled") == {made["c"]}
    assert listed(reference=f"{tag}-d") == {made["d"]}
    assert listed(reference=f"{tag}-d", item_id=item) == set()
    assert made["d"] in listed(location="MAIN", state="open")
    assert listed(item_id=other, state="expired") == set()
    page = day.get("/reservations", item_id=item, page_size=2)
    assert (page["total"], len(page["reservations"])) == (3, 2)


def test_plain_reserve_and_release_work_as_before(day: DayApi) -> None:
    item = day.create(10)
    day.applied(item, "reserve", {"quantity": 3})
    day.applied(item, "reserve", {"quantity": 2})
    kept = day.applied(item, "reserve", {"quantity": 4, "reference": "WEB-9"}).headers["X-Reservation-ID"]
    assert day.levels(item) == {"MAIN": (10, 9)}
    reason, _ = day.rejected(item, "reserve", {"quantity": 2})
    assert reason == "insufficient_stock"
    day.applied(item, "release", {"quantity": 4})  # the newest plain ones first: the 2, then 2 of the 3
    assert day.levels(item) == {"MAIN": (10, 5)}
    plain = sorted(
        (r["reserved"], r["quantity"], r["state"]) for r in day.reservations(item_id=item) if r["id"] != kept
    )
    assert plain == [(2, 0, "released"), (3, 1, "open")]
    # A plain release never gives back what a reference holds.
    snapshot = day.snapshot(item)
    reason, response = day.rejected(item, "release", {"quantity": 2})
    assert reason == "over_release" and "reference" in response.json()["message"]
    day.assert_unchanged(item, snapshot)
    day.applied(item, "release", {"quantity": 1})
    assert day.levels(item)["MAIN"] == (10, 4) and day.reservation(kept, item)["state"] == "open"


# --- bad input: refused before publishing, nothing changes -------------------------------------

# (command, body, the fields a 400 names; or, for a rule the listener decides, the rejection's reason)
BAD_FIELDS: list[tuple[str, dict[str, Any], set[str] | tuple[str, str]]] = [
    ("transfer", {"quantity": 0, "from_location": "MAIN", "to_location": "S001"}, {"quantity"}),
    ("transfer", {"quantity": -2, "from_location": "MAIN", "to_location": "S001"}, {"quantity"}),
    ("ship", {"quantity": 0, "from_location": "MAIN", "to_location": "S001"}, {"quantity"}),
    ("ship", {"quantity": -5, "from_location": "MAIN", "to_location": "S001"}, {"quantity"}),
    ("reserve", {"quantity": 0}, {"quantity"}),
    ("reserve", {"quantity": -1, "location": "S001"}, {"quantity"}),
    ("count", {"counted": -1, "location": "MAIN"}, {"counted"}),
    ("receive", {"transfer_id": UNKNOWN_ID, "received": -1}, {"received"}),
    ("transfer", {"quantity": 1, "from_location": "MAIN", "to_location": "MARS"}, {"to_location"}),
    ("ship", {"quantity": 1, "from_location": "MARS", "to_location": "S001"}, {"from_location"}),
    ("reserve", {"quantity": 1, "location": "MARS"}, {"location"}),
    ("count", {"counted": 3, "location": "MARS"}, {"location"}),
    ("adjust", {"quantity": 1, "location": "MARS", "reason": "received"}, {"location"}),
    ("transfer", {"quantity": 1, "from_location": "MAIN", "to_location": "MAIN"}, ("to_location", "same_location")),
    ("ship", {"quantity": 1, "from_location": "S001", "to_location": "S001"}, ("to_location", "same_location")),
    ("transfer", {"quantity": 1, "from_location": "MAIN"}, {"to_location"}),
    ("reserve", {"quantity": 1, "reference": "R" * 101}, {"reference"}),
    ("reserve", {"quantity": 1, "expires_in": 0}, {"expires_in"}),
    ("reserve", {"quantity": 1, "expires_in": THIRTY_DAYS + 1}, {"expires_in"}),
    ("adjust", {"quantity": 1, "reason": "found-it"}, {"reason"}),
    ("receive", {"transfer_id": "not-a-uuid"}, {"transfer_id"}),
    ("cancel-reservation", {"reservation_id": "12345"}, {"reservation_id"}),
]


@pytest.mark.parametrize(
    ("name", "body", "refusal"), BAD_FIELDS, ids=[f"{n}-{sorted(f)[0]}-{i}" for i, (n, _, f) in enumerate(BAD_FIELDS)]
)
def test_bad_fields_are_refused_naming_the_field_and_change_nothing(
    day: DayApi, name: str, body: dict[str, Any], refusal: set[str] | tuple[str, str]
) -> None:
    item = day.create(10, S001=5)
    before = day.snapshot(item)
    response = day.post(item, name, body)
    if isinstance(refusal, set):
        assert field_errors(response) == refusal
    else:
        assert_refused(day, response, field=refusal[0], reason=refusal[1])
    day.assert_unchanged(item, before)


def _ahead(moment: str) -> float:
    return (datetime.fromisoformat(moment.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"quantity": 1, "expires_at": "2020-01-01T00:00:00Z"}, "invalid"),  # long past
        ({"quantity": 1, "expires_at": "past"}, None),
        ({"quantity": 1, "expires_at": "2031-01-01T00:00:00"}, None),  # no time zone
        ({"quantity": 1, "expires_in": 60, "expires_at": "in-the-future"}, None),
        ({"quantity": 1, "expires_at": "9999-12-31T23:59:59Z"}, "invalid"),  # far beyond 30 days
    ],
    ids=["long-ago", "not-a-time", "no-zone", "both-one-bad", "year-9999"],
)
def test_expiry_times_that_are_not_times_or_out_of_reach_are_refused(
    day: DayApi, body: dict[str, Any], reason: str | None
) -> None:
    item = day.create(10)
    before = day.snapshot(item)
    assert_refused(day, day.post(item, "reserve", body), field="expires_at", reason=reason)
    day.assert_unchanged(item, before)


def test_expiry_times_in_the_past_or_beyond_30_days_are_refused_and_change_nothing(day: DayApi) -> None:
    item = day.create(10)
    before = day.snapshot(item)
    for expires_at in (_at(-5), _at(THIRTY_DAYS + 3600)):
        response = day.post(item, "reserve", {"quantity": 1, "expires_at": expires_at})
        assert_refused(day, response, field="expires_at", reason="invalid")
    day.assert_unchanged(item, before)
    # The limits themselves are fine.
    day.applied(item, "reserve", {"quantity": 1, "expires_at": _at(THIRTY_DAYS - 3600)})
    day.applied(item, "reserve", {"quantity": 1, "expires_in": THIRTY_DAYS, "reference": "R" * 100})


def test_expires_in_and_expires_at_together_are_refused_or_the_earlier_holds(day: DayApi) -> None:
    """The brief refuses both at once; the catalogue now documents "given both, the earlier holds".
    Either way nothing is held for longer than either says."""
    item = day.create(10)
    before = day.snapshot(item)
    sooner_in = day.post(item, "reserve", {"quantity": 1, "expires_in": 60, "expires_at": _at(3600)})
    if sooner_in.status_code == 400:
        assert field_errors(sooner_in) & {"expires_in", "expires_at"}
        day.assert_unchanged(item, before)
        return
    assert day.outcome(sooner_in) == ("applied", None), sooner_in.text
    sooner_at = day.applied(item, "reserve", {"quantity": 1, "expires_in": 3600, "expires_at": _at(120)})
    held_in = day.reservation(sooner_in.headers["X-Reservation-ID"], item)["expires_at"]
    held_at = day.reservation(sooner_at.headers["X-Reservation-ID"], item)["expires_at"]
    assert 0 < _ahead(held_in) <= 60 < _ahead(held_at) <= 120


@pytest.mark.parametrize("name", ["receive", "cancel-transfer"])
def test_an_unknown_transfer_is_rejected_unknown_transfer(day: DayApi, name: str) -> None:
    item = day.create(10)
    other = day.create(10)
    # Another item's transfer is as unknown to this item as a made-up id.
    elsewhere = day.applied(other, "ship", {"quantity": 1, "from_location": "MAIN", "to_location": "S001"})
    before = day.snapshot(item)
    for transfer_id in (UNKNOWN_ID, elsewhere.headers["X-Transfer-ID"]):
        reason, _ = day.rejected(item, name, {"transfer_id": transfer_id})
        assert reason == "unknown_transfer"
    day.assert_unchanged(item, before)
    assert day.transfers(item_id=other, state="in_transit")[0]["id"] == elsewhere.headers["X-Transfer-ID"]


@pytest.mark.parametrize("name", ["commit-reservation", "cancel-reservation"])
def test_an_unknown_reservation_is_rejected_unknown_reservation(day: DayApi, name: str) -> None:
    item = day.create(10)
    other = day.create(10)
    elsewhere = day.applied(other, "reserve", {"quantity": 1, "reference": "ELSEWHERE"}).headers["X-Reservation-ID"]
    before = day.snapshot(item)
    for reservation_id in (UNKNOWN_ID, elsewhere):
        reason, _ = day.rejected(item, name, {"reservation_id": reservation_id})
        assert reason == "unknown_reservation"
    day.assert_unchanged(item, before)
    assert day.reservation(elsewhere, other)["state"] == "open"


def test_a_transfer_received_twice_is_rejected_transfer_closed(day: DayApi) -> None:
    item = day.create(10)
    transfer_id = day.applied(item, "ship", {"quantity": 4, "from_location": "MAIN", "to_location": "S001"}).headers[
        "X-Transfer-ID"
    ]
    day.applied(item, "receive", {"transfer_id": transfer_id})
    before = day.snapshot(item)
    assert before["levels"] == {"MAIN": (6, 0), "S001": (4, 0)}
    reason, response = day.rejected(item, "receive", {"transfer_id": transfer_id})
    assert reason == "transfer_closed" and "received" in response.json()["message"]
    day.assert_unchanged(item, before)


def test_a_received_transfer_cannot_be_cancelled(day: DayApi) -> None:
    item = day.create(10)
    shipped = day.applied(item, "ship", {"quantity": 4, "from_location": "MAIN", "to_location": "S001"})
    day.applied(item, "receive", {"transfer_id": shipped.headers["X-Transfer-ID"], "received": 3})
    at_once = day.applied(item, "transfer", {"quantity": 2, "from_location": "MAIN", "to_location": "S002"})
    before = day.snapshot(item)
    for transfer_id in (shipped.headers["X-Transfer-ID"], at_once.headers["X-Transfer-ID"]):
        reason, _ = day.rejected(item, "cancel-transfer", {"transfer_id": transfer_id})
        assert reason == "transfer_closed"
    day.assert_unchanged(item, before)


def test_receiving_more_than_was_shipped_is_an_over_receipt(day: DayApi) -> None:
    item = day.create(10)
    transfer_id = day.applied(item, "ship", {"quantity": 4, "from_location": "MAIN", "to_location": "S001"}).headers[
        "X-Transfer-ID"
    ]
    before = day.snapshot(item)
    reason, _ = day.rejected(item, "receive", {"transfer_id": transfer_id, "received": 5})
    assert reason == "over_receipt"
    day.assert_unchanged(item, before)
    assert day.transfers(item_id=item)[0]["state"] == "in_transit"
    day.applied(item, "receive", {"transfer_id": transfer_id, "received": 4})  # still open, and whole


def test_shipping_or_reserving_more_than_is_available_is_rejected(day: DayApi) -> None:
    item = day.create(10)
    day.applied(item, "reserve", {"quantity": 6})
    before = day.snapshot(item)
    for name, body in [
        ("transfer", {"quantity": 5, "from_location": "MAIN", "to_location": "S001"}),
        ("ship", {"quantity": 5, "from_location": "MAIN", "to_location": "S001"}),
        ("ship", {"quantity": 1, "from_location": "S002", "to_location": "S001"}),  # nothing there
        ("reserve", {"quantity": 5}),
    ]:
        assert day.rejected(item, name, body)[0] == "insufficient_stock", (name, body)
    day.assert_unchanged(item, before)


def test_committing_an_expired_reservation_is_rejected_reservation_expired(day: DayApi) -> None:
    item = day.create(10)
    reservation_id = day.applied(item, "reserve", {"quantity": 3, "expires_in": 4}).headers["X-Reservation-ID"]
    expires_at = day.reservation(reservation_id, item)["expires_at"]
    before = day.snapshot(item)
    # The listener is away (killed: its expiry process is too) when the commit comes in too late,
    # so the commit reaches it before the expiry does.
    day.stack.listener.kill()
    try:
        still_open = query(day.db, "SELECT state FROM reservations WHERE id = ?", (reservation_id,))
        assert still_open == [("open",)], "the machine is too slow for this test: it expired before the kill"
        wait_until(lambda: datetime.now(UTC).isoformat() > expires_at.replace("Z", "+00:00"), timeout=30)
        time.sleep(0.1)
        late = day.post(item, "commit-reservation", {"reservation_id": reservation_id}, wait=False)
        assert late.status_code == 202, late.text
    finally:
        day.stack.listener.start()
    assert day.outcome(late) == ("rejected", "reservation_expired")
    wait_until(lambda: day.reservation(reservation_id, item)["state"] == "expired", timeout=60, interval=0.2)
    after = day.snapshot(item)
    assert after["totals"] == (10, 0, 0) and after["levels"] == {"MAIN": (10, 0)}
    assert after["version"] == before["version"] + 1  # the expiry; the commit changed nothing
    assert not [e for e in day.history(item) if e["type"] == "inventory.stock.reservation_committed"]


def test_committing_a_cancelled_reservation_is_rejected_reservation_closed(day: DayApi) -> None:
    item = day.create(10)
    reservation_id = day.applied(item, "reserve", {"quantity": 3, "reference": "GONE"}).headers["X-Reservation-ID"]
    day.applied(item, "cancel-reservation", {"reservation_id": reservation_id})
    before = day.snapshot(item)
    for name in ("commit-reservation", "cancel-reservation"):
        reason, response = day.rejected(item, name, {"reservation_id": reservation_id})
        assert reason == "reservation_closed" and "cancelled" in response.json()["message"]
    day.assert_unchanged(item, before)


def test_a_count_below_what_is_reserved_is_rejected_and_says_why(day: DayApi) -> None:
    item = day.create(10)
    day.applied(item, "reserve", {"quantity": 4})
    before = day.snapshot(item)
    reason, response = day.rejected(item, "count", {"counted": 3, "location": "MAIN"})
    assert reason == "count_below_reserved"
    assert response.status_code == 409 and "reserv" in response.json()["message"]
    day.assert_unchanged(item, before)
    day.applied(item, "count", {"counted": 4, "location": "MAIN"})  # down to what is reserved is fine


NEW_ROUTES = [
    "transfer",
    "ship",
    "receive",
    "cancel-transfer",
    "count",
    "reserve",
    "commit-reservation",
    "cancel-reservation",
    "adjust",
]
ODD_BODIES: list[Any] = [
    {},
    [],
    "text",
    None,
    {"quantity": "three"},
    {"quantity": 1.5},
    {"quantity": 10**30},
    {"quantity": True},
    {"quantity": 1, "from_location": 7, "to_location": None},
    {"counted": 10**13},
    {"transfer_id": None},
    {"transfer_id": 12},
    {"transfer_id": UNKNOWN_ID, "received": "all"},
    {"reservation_id": ["x"]},
    {"quantity": 1, "reference": 5},
    {"quantity": 1, "reference": {"a": 1}},
    {"quantity": 1, "expires_in": "soon"},
    {"quantity": 1, "expires_in": 1.5e300},
    {"quantity": 1, "expires_at": 1700000000},
    {"quantity": 1, "expires_at": "9999-99-99T99:99:99Z"},
    {"quantity": 1, "note": "n" * 201},
    {"quantity": 1, "colour": "red"},
]


def test_odd_bodies_on_every_new_route_are_4xx_never_5xx(day: DayApi) -> None:
    item = day.create(10)
    before = day.snapshot(item)
    answers: dict[int, int] = {}
    for name in NEW_ROUTES:
        for body in ODD_BODIES:
            response = day.post(item, name, body, wait=False)
            answers[response.status_code] = answers.get(response.status_code, 0) + 1
            assert 400 <= response.status_code < 500, (name, body, response.text)
            assert set(response.json()) == {"error", "message", "details"}, response.text
    assert set(answers) <= {400, 415}, answers
    # The expiry is the product's own command: no route takes it from outside.
    internal = day.post(item, "expire-reservation", {"reservation_id": UNKNOWN_ID})
    assert internal.status_code in (404, 405), internal.text
    day.assert_unchanged(item, before)


@pytest.mark.parametrize("name", NEW_ROUTES)
def test_an_unknown_item_is_404_on_every_new_route(day: DayApi, name: str) -> None:
    body = {
        "transfer": {"quantity": 1, "from_location": "MAIN", "to_location": "S001"},
        "ship": {"quantity": 1, "from_location": "MAIN", "to_location": "S001"},
        "receive": {"transfer_id": UNKNOWN_ID},
        "cancel-transfer": {"transfer_id": UNKNOWN_ID},
        "count": {"counted": 1},
        "reserve": {"quantity": 1, "reference": "X", "expires_in": 60},
        "commit-reservation": {"reservation_id": UNKNOWN_ID},
        "cancel-reservation": {"reservation_id": UNKNOWN_ID},
        "adjust": {"quantity": 1, "reason": "received"},
    }[name]
    response = day.post(str(uuid.uuid4()), name, body)
    assert response.status_code == 404, response.text
    assert response.json()["details"]["reason"] == "unknown_item"


def test_list_filters_are_checked(day: DayApi) -> None:
    base = f"{day.stack.query.url}/api/v1/inventory"
    for path, params, field in [
        ("/transfers", {"state": "lost"}, "state"),
        ("/transfers", {"location": "MARS"}, "location"),
        ("/transfers", {"item_id": "nope"}, "item_id"),
        ("/reservations", {"state": "open-ish"}, "state"),
        ("/reservations", {"location": "MARS"}, "location"),
        ("/reservations", {"reference": "R" * 101}, "reference"),
        ("/reservations", {"item_id": "12"}, "item_id"),
    ]:
        response = day.client.get(base + path, params=params, headers=day.auth)
        assert field in field_errors(response), (path, params)
    assert day.client.get(base + "/transfers").status_code == 401
    assert day.get("/transfers", item_id=str(uuid.uuid4()))["transfers"] == []
    assert day.get("/reservations", page=10**9, page_size=10**9)["page_size"] <= 200


# --- the log replays to the same state ---------------------------------------------------------


def test_rebuild_after_every_new_command_equals_the_database(day: DayApi) -> None:
    """Last in the module: it replays everything the module's tests did, plus a mix of its own."""
    item = day.create(40, S001=10)
    tag = uuid.uuid4().hex[:6]
    day.applied(item, "transfer", {"quantity": 5, "from_location": "MAIN", "to_location": "S002"})
    short = day.applied(item, "ship", {"quantity": 6, "from_location": "MAIN", "to_location": "S001"})
    day.applied(item, "receive", {"transfer_id": short.headers["X-Transfer-ID"], "received": 4, "note": "crushed"})
    back = day.applied(item, "ship", {"quantity": 2, "from_location": "S001", "to_location": "MAIN"})
    day.applied(item, "cancel-transfer", {"transfer_id": back.headers["X-Transfer-ID"]})
    day.applied(item, "ship", {"quantity": 1, "from_location": "S002", "to_location": "S001"})  # left in transit
    day.applied(item, "count", {"counted": 12, "location": "S001"})
    for reason, quantity in [("received", 3), ("sold", -1), ("damaged", -1), ("theft", -1), ("correction", 2)]:
        day.applied(item, "adjust", {"quantity": quantity, "location": "MAIN", "reason": reason})
    day.applied(item, "reserve", {"quantity": 2})
    day.applied(item, "reserve", {"quantity": 1, "location": "S001"})
    day.applied(item, "release", {"quantity": 1})
    twice = {"quantity": 2, "reference": f"{tag}-twice"}
    day.applied(item, "reserve", twice)
    day.applied(item, "reserve", twice)
    sold = day.applied(item, "reserve", {"quantity": 3, "reference": f"{tag}-sold", "expires_in": 600})
    day.applied(item, "commit-reservation", {"reservation_id": sold.headers["X-Reservation-ID"]})
    dropped = day.applied(item, "reserve", {"quantity": 1, "location": "S001", "reference": f"{tag}-dropped"})
    day.applied(item, "cancel-reservation", {"reservation_id": dropped.headers["X-Reservation-ID"]})
    expiring = day.applied(item, "reserve", {"quantity": 2, "expires_in": 1}).headers["X-Reservation-ID"]
    day.rejected(item, "receive", {"transfer_id": short.headers["X-Transfer-ID"]})
    day.rejected(item, "count", {"counted": 0, "location": "MAIN"})
    wait_until(lambda: day.reservation(expiring, item)["state"] == "expired", timeout=60, interval=0.2)
    assert invariant_problems(day.db) == []

    day.stack.listener.stop()
    try:
        out = run_cli(day.stack.env, "rebuild").stdout
        assert "the rebuilt state equals the current state" in out, out
        rebuilt = max(day.stack.data_dir.glob("rebuild-*.db"), key=lambda path: path.stat().st_mtime)
        # The audit trail replays to the same lines too (the rebuild compares state, not history).
        assert history_lines(rebuilt) == history_lines(day.db)
        assert invariant_problems(rebuilt) == []
    finally:
        day.stack.listener.start()
    expiries = query(day.db, "SELECT COUNT(*) FROM history WHERE actor = ?", (EXPIRY_ACTOR,))[0][0]
    assert expiries >= 1
