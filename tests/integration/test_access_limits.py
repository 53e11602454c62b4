"""What a black-box probe found open, closed: a session cookie writing through the API, unlimited
live streams per user, and command statuses readable by anyone.

One real ``all`` process serves every test here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.app import PASSWORD, USERS, base_env, item_body
from tests.support.processes import ServiceProcess, run_cli

ITEMS = "/api/v1/inventory/items"
STREAM = "/api/v1/inventory/stream"
PAGE_STREAM = "/ui/stream?view=dashboard"
MAX_STREAMS = 3


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("limits")
    env = base_env(root / "data", INVENTORY_MAX_STREAMS_PER_USER=str(MAX_STREAMS))
    for name, role in USERS.items():
        run_cli(env, "users", "add", name, "--role", role.value, "--password", PASSWORD)
    run_cli(env, "users", "add", "clerk2", "--role", "clerk", "--password", PASSWORD)
    process = ServiceProcess("all", env, root / "all.log").start()
    try:
        yield process
    finally:
        process.stop()


def _bearer(service: ServiceProcess, user: str) -> dict[str, str]:
    response = httpx.post(f"{service.url}/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _browser(service: ServiceProcess, user: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=service.url, timeout=30)
    client.get("/login")
    csrf = client.cookies["inventory_csrf"]
    logged_in = client.post("/login", data={"username": user, "password": PASSWORD, "_csrf_token": csrf})
    assert logged_in.status_code == 303
    return client, csrf


def _assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "details"} and body["error"] == error, body


# --- a session cookie is not enough for an API write --------------------------------------------


def test_an_api_write_with_only_the_session_cookie_is_refused(service: ServiceProcess) -> None:
    browser, csrf = _browser(service, "admin")
    foreign = {"Origin": "https://attacker.example", "Content-Type": "application/x-www-form-urlencoded"}
    replay = browser.post("/api/v1/dead-letters/1/replay", content=b"x=1", headers=foreign)
    _assert_error(replay, 401, "Unauthorized")
    create = browser.post(ITEMS, json=item_body(), headers={"Origin": "https://attacker.example"})
    _assert_error(create, 401, "Unauthorized")
    # Even with the pages' CSRF token: the API takes bearer tokens for writes, full stop.
    with_token = browser.post(ITEMS, json=item_body(), headers={"X-CSRFToken": csrf})
    _assert_error(with_token, 401, "Unauthorized")
    # Reads with the cookie, writes with a bearer token, and the pages' forms still work.
    assert browser.get(ITEMS).status_code == 200
    assert httpx.post(f"{service.url}{ITEMS}", json=item_body(), headers=_bearer(service, "admin")).status_code == 202
    form = browser.post("/ui/items", data={"sku": "FORM-1", "name": "From a form"}, headers={"X-CSRFToken": csrf})
    assert form.status_code < 400


# --- at most N live streams per user --------------------------------------------------------------


def test_live_streams_are_capped_per_user(service: ServiceProcess) -> None:
    viewer = _bearer(service, "viewer")
    with contextlib.ExitStack() as open_streams:
        client = open_streams.enter_context(httpx.Client(base_url=service.url, timeout=30))
        streams = []
        for path in (STREAM, PAGE_STREAM, STREAM):  # the API's and the pages' streams count together
            response = open_streams.enter_context(client.stream("GET", path, headers=viewer))
            assert response.status_code == 200
            streams.append(response)
        refused = client.get(STREAM, headers=viewer)
        _assert_error(refused, 429, "RateLimited")
        assert int(refused.headers["Retry-After"]) > 0 and refused.json()["details"] == {"limit": MAX_STREAMS}
        page_refused = client.get(PAGE_STREAM, headers=viewer)
        assert page_refused.status_code == 429 and int(page_refused.headers["Retry-After"]) > 0
        # Another user is not affected.
        with client.stream("GET", STREAM, headers=_bearer(service, "clerk")) as other:
            assert other.status_code == 200
        streams[0].close()
        deadline = time.monotonic() + 30
        while True:  # the closed stream's place is given back once the server sees the disconnect
            with client.stream("GET", STREAM, headers=viewer) as again:
                if again.status_code == 200:
                    break
                assert again.status_code == 429 and time.monotonic() < deadline
            time.sleep(0.1)


# --- a command's status is for its author, managers and admins ------------------------------------


def test_a_command_status_is_visible_to_its_author_and_managers_only(service: ServiceProcess) -> None:
    manager, clerk, other_clerk = (_bearer(service, u) for u in ("manager", "clerk", "clerk2"))
    viewer, admin = _bearer(service, "viewer"), _bearer(service, "admin")
    created = httpx.post(
        f"{service.url}{ITEMS}", json=item_body(quantity=5), headers={**manager, "Prefer": "wait=20"}, timeout=30
    )
    assert created.status_code == 201, created.text
    reserve = httpx.post(
        f"{service.url}{ITEMS}/{created.json()['id']}/reserve", json={"quantity": 1}, headers=clerk, timeout=30
    )
    assert reserve.status_code == 202
    clerks_command = reserve.json()["command_id"]
    status = f"{service.url}/api/v1/commands/{clerks_command}"

    for reader in (clerk, manager, admin):
        assert httpx.get(status, headers=reader).status_code == 200
    for stranger in (viewer, other_clerk):
        # 404 like an unknown id, not 403: ids of other people's commands do not leak.
        _assert_error(httpx.get(status, headers=stranger), 404, "NotFound")
    managers_command = created.headers["X-Command-ID"]
    assert httpx.get(f"{service.url}/api/v1/commands/{managers_command}", headers=clerk).status_code == 404

    badge = f"{service.url}/ui/commands/{clerks_command}/badge"
    assert httpx.get(badge, headers=clerk).status_code == 200
    assert httpx.get(badge, headers=viewer).status_code == 404
