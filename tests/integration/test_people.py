"""People: the admin API and page for users, and store-limited users, on a real deployment (the
``all`` role as its own process, with real SQLite files; changes also come from the console).

A user limited to S001 may change stock at S001 only: its commands elsewhere, through the API
and through the pages' forms, are refused with 403 and nothing is published.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.app import PASSWORD, base_env
from tests.support.processes import ServiceProcess, run_cli

ITEMS = "/api/v1/inventory/items"
USERS = "/api/v1/users"
DEADLINE = 30.0  # generous: "within seconds"; this only keeps a broken build from hanging
WAIT = {"Prefer": "wait=20"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], ServiceProcess]]:
    root = tmp_path_factory.mktemp("people")
    env = base_env(root / "data")
    run_cli(env, "users", "add", "admin", "--role", "admin", "--password", PASSWORD)
    run_cli(env, "users", "add", "clerk1", "--role", "clerk", "--password", PASSWORD, "--locations", "S001")
    run_cli(env, "users", "add", "manager1", "--role", "manager", "--password", PASSWORD, "--locations", "S001,S002")
    everything = ServiceProcess("all", env, root / "all.log").start()
    try:
        yield env, everything
    finally:
        everything.stop()


@pytest.fixture(scope="module")
def url(deployment: tuple[dict[str, str], ServiceProcess]) -> str:
    return deployment[1].url


def token(url: str, user: str, password: str = PASSWORD) -> dict[str, str]:
    response = httpx.post(f"{url}/api/v1/auth/login", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE} s: {what}")


def page_login(url: str, user: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=30)
    client.get("/login")
    csrf = client.cookies["inventory_csrf"]
    logged_in = client.post("/login", data={"username": user, "password": PASSWORD, "_csrf_token": csrf})
    assert logged_in.status_code == 303 and client.cookies.get("inventory_session")
    return client, csrf


def levels(url: str, admin: dict[str, str], item_id: str) -> tuple[int, dict[str, int]]:
    item = httpx.get(f"{url}{ITEMS}/{item_id}", headers=admin, timeout=30).json()
    return item["version"], {level["location"]: level["quantity"] for level in item["locations"]}


def history(url: str, admin: dict[str, str], item_id: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}{ITEMS}/{item_id}/history", headers=admin, timeout=30).json()["entries"])


def stocked_item(url: str, admin: dict[str, str]) -> str:
    """An item with 10 units at S001 and 10 at S002."""
    created = httpx.post(
        f"{url}{ITEMS}",
        json={"sku": f"PPL-{time.monotonic_ns()}", "name": "Store item", "quantity": 10, "location": "S001"},
        headers={**admin, **WAIT},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    item_id = str(created.json()["id"])
    moved = httpx.post(
        f"{url}{ITEMS}/{item_id}/adjust",
        json={"quantity": 10, "reason": "received", "location": "S002"},
        headers={**admin, **WAIT},
        timeout=30,
    )
    assert moved.status_code == 200, moved.text
    return item_id


def assert_nothing_happened(url: str, admin: dict[str, str], item_id: str, before: tuple[int, dict[str, int]]) -> None:
    """The refused command was never published: an allowed one sent after it is applied as the
    very next version, and the history holds no change by the refused user."""
    marker = httpx.post(
        f"{url}{ITEMS}/{item_id}/count",
        json={"counted": 10, "location": "S001", "note": "marker"},
        headers={**admin, **WAIT},
        timeout=30,
    )
    assert marker.status_code == 200, marker.text
    version, quantities = levels(url, admin, item_id)
    assert version == before[0] + 1
    assert quantities == before[1]
    assert not [entry for entry in history(url, admin, item_id) if entry["actor"] == "clerk1"]


# --- the admin API ----------------------------------------------------------------------------


def test_an_admin_adds_lists_changes_and_resets_a_user(url: str) -> None:
    admin = token(url, "admin")
    added = httpx.post(
        f"{url}{USERS}",
        json={"username": "Nina", "role": "clerk", "password": PASSWORD, "locations": ["s002", "S001"]},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    assert added.json() == {**added.json(), "username": "nina", "role": "clerk", "locations": ["S001", "S002"]}
    assert "password" not in added.text and "hash" not in added.text

    listed = httpx.get(f"{url}{USERS}", headers=admin).json()
    nina = next(user for user in listed if user["username"] == "nina")
    assert nina["locations"] == ["S001", "S002"] and nina["disabled"] is False
    assert all(set(user) == {"username", "role", "locations", "disabled", "created_at"} for user in listed)

    old = token(url, "nina")
    changed = httpx.patch(f"{url}{USERS}/nina", json={"role": "manager", "locations": ["S002"]}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["role"], changed.json()["locations"]) == ("manager", ["S002"])
    # Its old token (clerk at S001 and S002) ends; a new one carries the new role and location.
    until(lambda: httpx.get(f"{url}{ITEMS}", headers=old).status_code == 401, "the old token is refused")

    reset = httpx.post(f"{url}{USERS}/nina/password", json={"password": "a-new-long-password"}, headers=admin)
    assert reset.status_code == 204 and reset.content == b""
    assert httpx.post(f"{url}/api/v1/auth/login", json={"username": "nina", "password": PASSWORD}).status_code == 401
    token(url, "nina", "a-new-long-password")

    assert httpx.delete(f"{url}{USERS}/nina", headers=admin).status_code == 204
    assert httpx.patch(f"{url}{USERS}/nina", json={"disabled": True}, headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"username": "x y", "role": "clerk", "password": PASSWORD}, 400, "username"),
        ({"username": "short-pw", "role": "clerk", "password": "short"}, 400, "password"),
        ({"username": "bad-role", "role": "owner", "password": PASSWORD}, 400, "role"),
        ({"username": "bad-place", "role": "clerk", "password": PASSWORD, "locations": ["S999"]}, 400, "locations"),
        ({"username": "extra", "role": "clerk", "password": PASSWORD, "hash": "x"}, 400, None),
        ({"username": "admin", "role": "clerk", "password": PASSWORD}, 409, None),
    ],
)
def test_bad_new_users_are_refused_in_the_one_error_shape(
    url: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    answer = httpx.post(f"{url}{USERS}", json=body, headers=token(url, "admin"))
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert set(error) == {"error", "message", "details"} and error["message"]
    if field is not None:
        assert [problem["field"] for problem in error["details"]] == [field]


def test_only_an_admin_with_every_location_manages_users(
    url: str, deployment: tuple[dict[str, str], ServiceProcess]
) -> None:
    env, _ = deployment
    run_cli(env, "users", "add", "store-admin", "--role", "admin", "--password", PASSWORD, "--locations", "S002")
    for user in ("clerk1", "store-admin"):
        headers = token(url, user)
        assert httpx.get(f"{url}{USERS}", headers=headers).status_code == 403
        refused = httpx.post(
            f"{url}{USERS}", json={"username": "sneaky", "role": "admin", "password": PASSWORD}, headers=headers
        )
        assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
        assert httpx.patch(f"{url}{USERS}/{user}", json={"locations": []}, headers=headers).status_code == 403
    assert httpx.get(f"{url}{USERS}").status_code == 401
    page, _ = page_login(url, "clerk1")
    assert page.get("/people").status_code == 403
    assert "sneaky" not in {user["username"] for user in httpx.get(f"{url}{USERS}", headers=token(url, "admin")).json()}


def test_the_api_is_documented(url: str) -> None:
    document = httpx.get(f"{url}/schema/openapi.json").json()
    assert {"get", "post"} <= set(document["paths"]["/api/v1/users"])
    assert {"patch", "delete"} <= set(document["paths"]["/api/v1/users/{username}"])
    assert "409" in document["paths"]["/api/v1/users/{username}"]["patch"]["responses"]
    assert document["components"]["schemas"]["NewUser"]["additionalProperties"] is False


# --- the last admin ---------------------------------------------------------------------------


def test_the_last_admin_cannot_be_removed_disabled_demoted_or_limited(
    url: str, deployment: tuple[dict[str, str], ServiceProcess]
) -> None:
    env, _ = deployment
    admin = token(url, "admin")
    for method, path, body in (
        ("DELETE", f"{USERS}/admin", None),
        ("PATCH", f"{USERS}/admin", {"disabled": True}),
        ("PATCH", f"{USERS}/admin", {"role": "manager"}),
        ("PATCH", f"{USERS}/admin", {"locations": ["MAIN"]}),
    ):
        refused = httpx.request(method, f"{url}{path}", json=body, headers=admin)
        assert refused.status_code == 409, refused.text
        assert refused.json()["details"]["reason"] == "last_admin"
        assert "last enabled admin" in refused.json()["message"]
    with pytest.raises(RuntimeError, match="last enabled admin"):
        run_cli(env, "users", "remove", "admin")
    # Nothing changed: the admin's token still works (no new epoch) and it is still an admin.
    assert httpx.get(f"{url}{USERS}", headers=admin).status_code == 200

    page, csrf = page_login(url, "admin")
    answer = page.post("/ui/people/admin/disabled", data={"disabled": "1"}, headers={"X-CSRFToken": csrf})
    assert answer.status_code == 409 and "last enabled admin" in answer.text
    me = next(user for user in httpx.get(f"{url}{USERS}", headers=admin).json() if user["username"] == "admin")
    assert (me["role"], me["disabled"], me["locations"]) == ("admin", False, [])


# --- a disabled user ----------------------------------------------------------------------------


def test_a_disabled_users_token_and_session_are_refused(url: str) -> None:
    admin = token(url, "admin")
    assert httpx.post(
        f"{url}{USERS}", json={"username": "leaver", "role": "clerk", "password": PASSWORD}, headers=admin
    ).is_success
    old = token(url, "leaver")
    browser, _ = page_login(url, "leaver")
    assert browser.get("/").status_code == 200
    assert httpx.patch(f"{url}{USERS}/leaver", json={"disabled": True}, headers=admin).status_code == 200
    until(lambda: httpx.get(f"{url}{ITEMS}", headers=old).status_code == 401, "the disabled user's token is refused")
    assert browser.get("/", follow_redirects=False).status_code == 303  # to the login page
    assert httpx.post(f"{url}/api/v1/auth/login", json={"username": "leaver", "password": PASSWORD}).status_code == 401


# --- a store-limited user -------------------------------------------------------------------------


def test_a_store_limited_clerk_is_refused_at_another_store_through_the_api(url: str) -> None:
    admin, clerk = token(url, "admin"), token(url, "clerk1")
    item_id = stocked_item(url, admin)
    before = levels(url, admin, item_id)
    for path, body in (
        ("adjust", {"quantity": -3, "reason": "damaged", "location": "S002"}),
        ("count", {"counted": 0, "location": "S002"}),
        ("reserve", {"quantity": 1}),  # no location: the default one, MAIN
        ("ship", {"quantity": 2, "from_location": "S002", "to_location": "S001"}),
    ):
        refused = httpx.post(f"{url}{ITEMS}/{item_id}/{path}", json=body, headers={**clerk, **WAIT}, timeout=30)
        assert refused.status_code == 403, refused.text
        error = refused.json()
        assert error["error"] == "Forbidden" and error["details"]["reason"] == "location_not_allowed"
        assert error["details"]["location"] in ("S002", "MAIN") and error["details"]["location"] in error["message"]
    # The catalogue is every store's: even a manager of every store but MAIN may not edit an item.
    edit = httpx.put(f"{url}{ITEMS}/{item_id}", json={"name": "Renamed"}, headers=token(url, "manager1"))
    assert edit.status_code == 403 and edit.json()["details"]["reason"] == "every_location_needed"
    assert_nothing_happened(url, admin, item_id, before)


def test_a_store_limited_clerk_acts_at_its_own_store(url: str) -> None:
    admin, clerk = token(url, "admin"), token(url, "clerk1")
    item_id = stocked_item(url, admin)
    allowed = httpx.post(
        f"{url}{ITEMS}/{item_id}/adjust", json={"quantity": -3, "reason": "damaged", "location": "S001"}, headers=clerk
    )
    assert allowed.status_code == 202, allowed.text
    shipped = httpx.post(
        f"{url}{ITEMS}/{item_id}/ship",
        json={"quantity": 2, "from_location": "S001", "to_location": "S002"},
        headers={**clerk, **WAIT},
        timeout=30,
    )
    assert shipped.status_code == 200, shipped.text
    until(lambda: levels(url, admin, item_id)[1]["S001"] == 5, "both commands applied")
    # The shipment goes to S002: receiving it there is S002's business, cancelling it is S001's.
    transfer_id = shipped.headers["X-Transfer-ID"]
    receive = httpx.post(f"{url}{ITEMS}/{item_id}/receive", json={"transfer_id": transfer_id}, headers=clerk)
    assert receive.status_code == 403 and "S002" in receive.json()["message"]
    cancel = httpx.post(f"{url}{ITEMS}/{item_id}/cancel-transfer", json={"transfer_id": transfer_id}, headers=clerk)
    assert cancel.status_code == 202, cancel.text


def test_records_of_another_store_or_not_known_yet_are_refused(url: str) -> None:
    admin, clerk = token(url, "admin"), token(url, "clerk1")
    item_id = stocked_item(url, admin)
    reserved = httpx.post(
        f"{url}{ITEMS}/{item_id}/reserve",
        json={"quantity": 2, "location": "S002"},
        headers={**admin, **WAIT},
        timeout=30,
    )
    assert reserved.status_code == 200, reserved.text
    reservation_id = reserved.headers["X-Reservation-ID"]
    before = levels(url, admin, item_id)
    commit = httpx.post(
        f"{url}{ITEMS}/{item_id}/commit-reservation", json={"reservation_id": reservation_id}, headers=clerk
    )
    assert commit.status_code == 403 and commit.json()["details"] == {
        "reason": "location_not_allowed",
        "location": "S002",
    }
    unknown = httpx.post(
        f"{url}{ITEMS}/{item_id}/receive", json={"transfer_id": "0b6f3c1e-8d7a-5e2b-9c41-2f7a6d3e1b90"}, headers=clerk
    )
    assert unknown.status_code == 409, unknown.text
    assert unknown.json()["details"]["reason"] == "record_not_known_yet" and "retry" in unknown.json()["message"]
    assert_nothing_happened(url, admin, item_id, before)


def test_a_store_limited_clerk_is_refused_at_another_store_through_the_forms(url: str) -> None:
    admin = token(url, "admin")
    item_id = stocked_item(url, admin)
    before = levels(url, admin, item_id)
    browser, csrf = page_login(url, "clerk1")
    # The item page offers the clerk's store only; a form sent for another store anyway is refused.
    page = browser.get(f"/items/{item_id}").text
    assert '<option value="S001" selected>' in page.replace("  ", " ")
    assert 'name="location"' in page and '<option value="S002"' not in page.split('id="move-to_location"')[0]
    refused = browser.post(
        f"/ui/items/{item_id}/adjust",
        data={"form_id": "adjust", "label": "STORE", "quantity": "3", "reason": "damaged", "location": "S002"},
        headers={"X-CSRFToken": csrf, "HX-Request": "true"},
    )
    assert refused.status_code == 403
    assert "location_not_allowed" in refused.text and "you may not act at S002" in refused.text
    allowed = browser.post(
        f"/ui/items/{item_id}/adjust",
        data={"form_id": "adjust", "label": "STORE", "quantity": "1", "reason": "damaged", "location": "S001"},
        headers={"X-CSRFToken": csrf, "HX-Request": "true"},
    )
    assert allowed.status_code == 202, allowed.text
    until(lambda: levels(url, admin, item_id)[1]["S001"] == 9, "the allowed form's command applied")
    version, quantities = levels(url, admin, item_id)
    assert version == before[0] + 1 and quantities["S002"] == before[1]["S002"]


def test_the_dashboard_opens_on_the_users_store(url: str) -> None:
    browser, _ = page_login(url, "clerk1")
    # Opened without a location: the clerk's store; "All locations" (location=) stays all.
    assert re.search(r"\d+ items? at S001", browser.get("/").text)
    assert not re.search(r"\d+ items? at ", browser.get("/?location=").text)
    admin, _ = page_login(url, "admin")
    assert not re.search(r"\d+ items? at ", admin.get("/").text)


# --- the People page ----------------------------------------------------------------------------


def test_the_people_page_adds_and_changes_a_user(url: str) -> None:
    page, csrf = page_login(url, "admin")
    listed = page.get("/people")
    assert listed.status_code == 200 and "clerk1" in listed.text
    headers = {"X-CSRFToken": csrf, "HX-Request": "true"}
    form = {"username": "paula", "role": "manager", "password": PASSWORD, "locations": "s002"}
    added = page.post("/ui/people", data=form, headers=headers)
    assert added.status_code == 200, added.text
    assert "paula" in added.text and 'hx-swap-oob="beforeend:#people-rows"' in added.text
    again = page.post("/ui/people", data=form, headers=headers)
    assert again.status_code == 409 and "already exists" in again.text
    bad = page.post("/ui/people/paula/locations", data={"locations": "S002, NOWHERE"}, headers=headers)
    assert bad.status_code == 400 and "unknown locations: NOWHERE" in bad.text
    limited = page.post("/ui/people/paula/locations", data={"locations": "S001 s002"}, headers=headers)
    assert limited.status_code == 200 and "S001, S002" in limited.text
    principal = token(url, "paula")
    listed_user = next(
        u for u in httpx.get(f"{url}{USERS}", headers=token(url, "admin")).json() if u["username"] == "paula"
    )
    assert listed_user["locations"] == ["S001", "S002"] and listed_user["role"] == "manager"
    disabled = page.post("/ui/people/paula/disabled", data={"disabled": "1"}, headers=headers)
    assert disabled.status_code == 200 and "Enable" in disabled.text
    until(lambda: httpx.get(f"{url}{ITEMS}", headers=principal).status_code == 401, "the disabled user's token ends")
    # Without the CSRF token nothing changes.
    assert page.post("/ui/people/paula/role", data={"role": "admin"}).status_code == 403


# --- the console ------------------------------------------------------------------------------


def test_the_console_limits_and_lists_users(url: str, deployment: tuple[dict[str, str], ServiceProcess]) -> None:
    env, _ = deployment
    run_cli(env, "users", "add", "console1", "--role", "clerk", "--password", PASSWORD, "--locations", "s002,S001")
    assert re.search(r"^console1\tclerk\t\S+\tlocations=S001,S002$", run_cli(env, "users", "list").stdout, re.M)
    old = token(url, "console1")
    assert "may act at MAIN" in run_cli(env, "users", "set-locations", "console1", "main").stdout
    until(lambda: httpx.get(f"{url}{ITEMS}", headers=old).status_code == 401, "the old token (S001, S002) ends")
    with pytest.raises(RuntimeError, match="unknown locations: S999"):
        run_cli(env, "users", "set-locations", "console1", "S999")
    run_cli(env, "users", "set-locations", "console1", "all")
    assert re.search(r"^console1\tclerk\t\S+$", run_cli(env, "users", "list").stdout, re.M)
