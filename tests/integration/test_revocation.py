"""Tokens end with what they stand for: a changed role, a disabled, removed or re-passworded user,
and a logout, on every process of the deployment (app/auth/revocation.py).

The stack is real processes sharing one data directory: the ``all`` role and a second process of
its own (the ``query`` role), and the change is made by ``inventory users ...`` from a third.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.app import PASSWORD, base_env, item_body
from tests.support.processes import ServiceProcess, run_cli
from tests.support.sse import StreamReader

ITEMS = "/api/v1/inventory/items"
DEADLINE = 30.0  # generous: the promise is "within seconds", this only keeps a broken build from hanging


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], ServiceProcess, ServiceProcess]]:
    root = tmp_path_factory.mktemp("revocation")
    env = base_env(root / "data")
    run_cli(env, "users", "add", "admin", "--role", "admin", "--password", PASSWORD)
    everything = ServiceProcess("all", env, root / "all.log").start()
    query = ServiceProcess("query", env, root / "query.log").start()
    try:
        yield env, everything, query
    finally:
        query.stop()
        everything.stop()


def _token(url: str, user: str, password: str = PASSWORD) -> dict[str, str]:
    response = httpx.post(f"{url}/api/v1/auth/login", json={"username": user, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE} s: {what}")


def _create(url: str, headers: dict[str, str]) -> int:
    return httpx.post(f"{url}{ITEMS}", json=item_body(), headers=headers, timeout=30).status_code


def _read(url: str, headers: dict[str, str]) -> int:
    return httpx.get(f"{url}{ITEMS}", headers=headers, timeout=30).status_code


CHANGES = {
    "role": ("role", "--role", "viewer"),
    "disable": ("disable",),
    "remove": ("remove",),
    "passwd": ("passwd", "--password", "another-long-password"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_user_loses_its_old_tokens_on_every_process(
    stack: tuple[dict[str, str], ServiceProcess, ServiceProcess], change: str
) -> None:
    env, everything, query = stack
    name = f"revoked-{change}"
    run_cli(env, "users", "add", name, "--role", "manager", "--password", PASSWORD)
    old = _token(everything.url, name)
    _until(lambda: _read(query.url, old) == 200, "the query process knows the new user")
    assert _create(everything.url, old) == 202

    verb, *rest = CHANGES[change]
    run_cli(env, "users", verb, name, *rest)

    _until(lambda: _create(everything.url, old) == 401, f"{change}: the old token cannot write")
    _until(lambda: _read(query.url, old) == 401, f"{change}: the old token cannot read on the other process")
    assert _read(everything.url, old) == 401
    if change == "role":
        demoted = _token(everything.url, name)  # a new login carries the new role
        assert _create(everything.url, demoted) == 403 and _read(query.url, demoted) == 200
    elif change == "passwd":
        renewed = _token(everything.url, name, "another-long-password")
        assert _create(everything.url, renewed) == 202
    else:
        refused = httpx.post(f"{everything.url}/api/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert refused.status_code == 401


def test_enabling_a_user_again_does_not_bring_its_old_tokens_back(
    stack: tuple[dict[str, str], ServiceProcess, ServiceProcess],
) -> None:
    env, everything, _ = stack
    run_cli(env, "users", "add", "paused", "--role", "clerk", "--password", PASSWORD)
    old = _token(everything.url, "paused")
    run_cli(env, "users", "disable", "paused")
    _until(lambda: _read(everything.url, old) == 401, "the disabled user's token is refused")
    run_cli(env, "users", "enable", "paused")
    fresh = _token(everything.url, "paused")
    assert _read(everything.url, fresh) == 200
    assert _read(everything.url, old) == 401
    listed = run_cli(env, "users", "list").stdout
    assert re.search(r"^paused\tclerk\t\S+$", listed, re.MULTILINE), listed


def _page_login(url: str, user: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=30)
    client.get("/login")
    csrf = client.cookies["inventory_csrf"]
    logged_in = client.post("/login", data={"username": user, "password": PASSWORD, "_csrf_token": csrf})
    assert logged_in.status_code == 303 and client.cookies.get("inventory_session")
    return client, csrf


def test_logout_ends_the_session_on_the_server(
    stack: tuple[dict[str, str], ServiceProcess, ServiceProcess], tmp_path: Path
) -> None:
    env, everything, query = stack
    run_cli(env, "users", "add", "leaving", "--role", "manager", "--password", PASSWORD)
    browser, csrf = _page_login(everything.url, "leaving")
    session = browser.cookies["inventory_session"]
    form = {"sku": "LOGOUT-1", "name": "Before logout", "quantity": "1"}
    assert browser.get("/").status_code == 200
    assert browser.post("/ui/items", data=form, headers={"X-CSRFToken": csrf}).status_code < 400
    # The same session cookie works on the other process of the deployment too.
    _until(lambda: _cookie_get(query.url, session, csrf) == 200, "the query process accepts the session")

    assert browser.post("/logout", data={"_csrf_token": csrf}).status_code == 303

    # A copy of the cookie kept from before the logout is refused here at once and elsewhere soon.
    assert _cookie_get(everything.url, session, csrf) == 303  # to the login page
    stolen = httpx.Client(base_url=everything.url, cookies={"inventory_session": session, "inventory_csrf": csrf})
    refused = stolen.post("/ui/items", data={**form, "sku": "LOGOUT-2"}, headers={"X-CSRFToken": csrf})
    assert refused.status_code == 401
    _until(lambda: _cookie_get(query.url, session, csrf) == 303, "the other process refuses the ended session")
    # Another session of the same user goes on.
    other, _ = _page_login(everything.url, "leaving")
    assert other.get("/").status_code == 200


def test_a_disabled_users_session_and_its_open_page_stream_end(
    stack: tuple[dict[str, str], ServiceProcess, ServiceProcess],
) -> None:
    env, everything, query = stack
    run_cli(env, "users", "add", "paused-page", "--role", "clerk", "--password", PASSWORD)
    browser, csrf = _page_login(everything.url, "paused-page")
    session = browser.cookies["inventory_session"]
    _until(lambda: _cookie_get(query.url, session, csrf) == 200, "the query process knows the new user")
    cookie = {"inventory_session": session}
    pages = [StreamReader(f"{url}/ui/stream?view=dashboard", cookie) for url in (everything.url, query.url)]
    api = StreamReader(f"{query.url}/api/v1/inventory/stream", headers=_token(everything.url, "paused-page"))
    deadline = time.monotonic() + DEADLINE
    for stream in pages:
        assert stream.next_line(deadline) == "status 200"
        stream.wait_for("event: resync", deadline)
    assert api.next_line(deadline) == "status 200"
    api.wait_for(": connected", deadline)
    streams = [*pages, api]

    run_cli(env, "users", "disable", "paused-page")

    # Each open stream (the pages' and the API's) says why it ends, then closes.
    for stream in streams:
        seen = stream.rest(deadline)
        assert "event: ended" in seen and "data: revoked" in seen, seen
    assert _cookie_get(everything.url, session, csrf) == 303
    assert _cookie_get(query.url, session, csrf) == 303
    refused = browser.post("/ui/items", data={"sku": "PAUSED-1", "name": "After"}, headers={"X-CSRFToken": csrf})
    assert refused.status_code == 401
    ended = httpx.get(f"{everything.url}/ui/session", cookies={"inventory_session": session})
    assert ended.status_code == 401 and ended.json()["details"]["kind"] == "user"


def _cookie_get(url: str, session: str, csrf: str) -> int:
    cookies = {"inventory_session": session, "inventory_csrf": csrf}
    return httpx.get(f"{url}/", cookies=cookies, follow_redirects=False, timeout=30).status_code
