"""Wall links against real processes: a forged or revoked link opens nothing, a link cannot send
a command (JSON or form, to the command service or the pages' service) and changes nothing, and
revoking a link ends its open wall stream within seconds (app/auth/kiosk.py).

The stack is an ``all`` process (pages and commands) and a ``command`` process of its own on the
same data directory; a wall's cookie reaches both, as a browser sends it to every port of a host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.app import PASSWORD, USERS, base_env, item_body
from tests.support.processes import ServiceProcess, run_cli
from tests.support.sse import StreamReader

ITEMS = "/api/v1/inventory/items"
LINKS = "/api/v1/kiosk-links"
DEADLINE = 30.0  # generous: the promise is "within seconds", this only keeps a broken build from hanging
WALL_ONLY = "a wall link can only show its wall"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    root = tmp_path_factory.mktemp("kiosk")
    env = base_env(root / "data")
    for name, role in USERS.items():
        run_cli(env, "users", "add", name, "--role", role.value, "--password", PASSWORD)
    everything = ServiceProcess("all", env, root / "all.log").start()
    command = ServiceProcess("command", env, root / "command.log").start()
    try:
        yield everything, command
    finally:
        command.stop()
        everything.stop()


def _bearer(url: str, user: str = "admin") -> dict[str, str]:
    response = httpx.post(f"{url}/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _make_link(url: str, locations: list[str], name: str = "Shop TV") -> dict[str, Any]:
    made = httpx.post(f"{url}{LINKS}", json={"name": name, "locations": locations}, headers=_bearer(url))
    assert made.status_code == 201, made.text
    return dict(made.json())


def _enter(url: str, link: dict[str, Any]) -> httpx.Client:
    """A TV's browser that opened the link: it holds the link's cookie and the CSRF cookie."""
    tv = httpx.Client(base_url=url, timeout=30)
    path = link["url"].split("://", 1)[1].split("/", 1)[1]
    entered = tv.get(f"/{path}")
    assert entered.status_code == 303, entered.text
    assert entered.headers["location"] == "/wall?location=" + ",".join(link["locations"])
    assert tv.cookies.get("inventory_kiosk")
    tv.get("/login")  # the CSRF cookie, as the wall page would have it
    return tv


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE} s: {what}")


def _revoke(url: str, link_id: str) -> None:
    revoked = httpx.delete(f"{url}{LINKS}/{link_id}", headers=_bearer(url))
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked", revoked.text


def test_a_forged_link_opens_nothing_and_sets_no_cookie(stack: tuple[ServiceProcess, ServiceProcess]) -> None:
    everything, _ = stack
    link = _make_link(everything.url, ["S001"])
    secret = link["url"].rsplit(".", 1)[1]
    forged_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    for forged in (f"{link['id']}.{forged_secret}", f"{'0' * 16}.{secret}", "not-a-link", f"{link['id']}"):
        answer = httpx.get(f"{everything.url}/kiosk/{forged}")
        assert answer.status_code == 403, forged
        assert "This wall link is not valid" in answer.text
        assert "inventory_kiosk" not in answer.headers.get("set-cookie", "")
    # A forged cookie is no better than a forged link.
    cookies = {"inventory_kiosk": f"{link['id']}.{forged_secret}"}
    wall = httpx.get(f"{everything.url}/wall?location=S001", cookies=cookies, follow_redirects=False)
    assert wall.status_code == 403 and "not valid" in wall.text
    # The link's list never shows a secret.
    listed = httpx.get(f"{everything.url}{LINKS}", headers=_bearer(everything.url)).json()
    assert secret not in str(listed) and {entry["id"] for entry in listed} >= {link["id"]}


def test_a_revoked_link_opens_nothing(stack: tuple[ServiceProcess, ServiceProcess]) -> None:
    everything, _ = stack
    link = _make_link(everything.url, ["S001", "S002"], name="Region")
    tv = _enter(everything.url, link)
    assert tv.get("/wall?location=S001,S002").status_code == 200

    _revoke(everything.url, link["id"])

    refused = tv.get("/wall?location=S001,S002")
    assert refused.status_code == 403 and "This wall link was revoked" in refused.text
    path = "/" + link["url"].split("://", 1)[1].split("/", 1)[1]
    again = httpx.get(f"{everything.url}{path}")
    assert again.status_code == 403 and "This wall link was revoked" in again.text
    assert "inventory_kiosk" not in again.headers.get("set-cookie", "")
    session = tv.get("/ui/session")
    assert session.status_code == 401
    assert session.json()["details"] == {"kind": "kiosk", "reason": "revoked"}


def test_a_wall_link_cannot_send_a_command(stack: tuple[ServiceProcess, ServiceProcess]) -> None:
    everything, command = stack
    admin = _bearer(everything.url)
    created = httpx.post(
        f"{everything.url}{ITEMS}",
        json=item_body("KIOSK-KEEP", quantity=5, location="S001"),
        headers={**admin, "Prefer": "wait=20"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    item = created.json()
    tv = _enter(everything.url, _make_link(everything.url, ["S001"]))
    cookies = dict(tv.cookies.items())
    csrf = {"X-CSRFToken": cookies["inventory_csrf"]}
    # The command process knows the new link within about a second (before, it is "not valid").
    _until(
        lambda: WALL_ONLY in httpx.get(f"{command.url}/api/v1/commands/none", cookies=cookies).text,
        "the command process knows the link",
    )

    one, take = {"quantity": 1, "location": "S001"}, {"quantity": "-5", "location": "S001"}
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        (command.url, f"{ITEMS}", {"json": item_body("KIOSK-NEW")}),
        (command.url, f"{ITEMS}/{item['id']}/adjust", {"json": {"quantity": -5, "location": "S001"}}),
        (everything.url, f"{ITEMS}/{item['id']}/reserve", {"json": one}),
        (command.url, "/ui/items", {"data": {"sku": "KIOSK-FORM", "name": "From a wall"}, "headers": csrf}),
        (command.url, f"/ui/items/{item['id']}/reserve", {"data": one, "headers": csrf}),
        (everything.url, f"/ui/items/{item['id']}/adjust", {"data": take, "headers": csrf}),
        (everything.url, LINKS, {"json": {"name": "Another", "locations": ["MAIN"]}}),
    ]
    for base, path, request in attempts:
        answer = httpx.post(f"{base}{path}", cookies=cookies, timeout=30, **request)
        assert answer.status_code == 403, (base, path, answer.text)
        assert WALL_ONLY in answer.text, (base, path, answer.text)
    # Nor read anything but its wall.
    for path in (
        "/",
        "/events",
        ITEMS,
        "/kiosk-links",
        "/wall?location=MAIN",
        "/ui/stream?view=dashboard&location=S001",
    ):
        answer = httpx.get(f"{everything.url}{path}", cookies=cookies, follow_redirects=False)
        assert answer.status_code == 403 and WALL_ONLY in answer.text, (path, answer.text)

    # Nothing changed.
    found = httpx.get(f"{everything.url}{ITEMS}", params={"q": "KIOSK-"}, headers=admin).json()
    assert [entry["sku"] for entry in found["items"]] == ["KIOSK-KEEP"]
    stored = httpx.get(f"{everything.url}{ITEMS}/{item['id']}", headers=admin).json()
    assert (stored["quantity"], stored["reserved"], stored["version"]) == (item["quantity"], 0, item["version"])
    assert [entry["name"] for entry in httpx.get(f"{everything.url}{LINKS}", headers=admin).json()].count(
        "Another"
    ) == 0


def test_revoking_a_link_ends_its_open_stream_within_seconds(stack: tuple[ServiceProcess, ServiceProcess]) -> None:
    everything, _ = stack
    link = _make_link(everything.url, ["S002"])
    tv = _enter(everything.url, link)
    stream = StreamReader(f"{everything.url}/ui/stream?view=wall&location=S002", dict(tv.cookies.items()))
    deadline = time.monotonic() + DEADLINE
    assert stream.next_line(deadline) == "status 200"
    stream.wait_for("event: resync", deadline)  # connected: the greeting came

    _revoke(everything.url, link["id"])

    seen = stream.rest(deadline)
    assert "event: ended" in seen and "data: revoked" in seen, seen
