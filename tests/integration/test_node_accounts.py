"""Accounts on nodes, as real processes (docs/scaling.md): a node has no users.db of the
listener's, only a copy it pulls, and sends every change to the listener. Logins, admin changes
and logouts work from any node, and reach the others within seconds (polled, never timed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.app import PASSWORD, settings_for
from tests.support.nodes import NodeStack, node_stack
from tests.support.processes import run_cli
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeStack]:
    base = tmp_path_factory.mktemp("node-accounts")
    (base / "logs").mkdir()
    with node_stack(kafka_bootstrap, None, base / "data", base / "logs", query_nodes=2, command_nodes=1) as nodes:
        yield nodes


def login(url: str, username: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password}, timeout=30)


def bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def users_status(url: str, headers: dict[str, str]) -> int:
    """401 while the token is refused; 200 (an admin) or 403 (anyone else) once it is accepted."""
    return httpx.get(f"{url}/api/v1/users", headers=headers, timeout=30).status_code


def internal(stack: NodeStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings_for(stack.listener.env).internal_token}"}


def test_a_user_made_on_the_listener_logs_in_on_any_node(stack: NodeStack) -> None:
    # Made with the console command before the listener started (tests/support/nodes.py).
    admin = bearer(login(stack.queries[0].url, "admin"))
    for node in stack.processes():
        assert users_status(node.url, admin) == 200
    assert login(stack.queries[1].url, "admin", "wrong-password-here").status_code == 401
    # Made with the console command on the listener while the nodes run: their copies follow.
    run_cli(stack.listener.env, "users", "add", "late-comer", "--role", "viewer", "--password", PASSWORD)
    for node in stack.queries:
        wait_until(lambda url=node.url: login(url, "late-comer").status_code == 200)


def test_an_admin_on_a_command_node_manages_users_for_every_node(stack: NodeStack) -> None:
    command = stack.commands[0].url
    admin = bearer(login(command, "admin"))
    made = httpx.post(
        f"{command}/api/v1/users",
        json={"username": "node-made", "role": "clerk", "password": PASSWORD, "locations": ["S001"]},
        headers=admin,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    assert made.json()["locations"] == ["S001"]
    # The node that made it reads it at once; the others within about a second.
    listed = httpx.get(f"{command}/api/v1/users", headers=admin, timeout=30).json()
    assert "node-made" in {user["username"] for user in listed}
    wait_until(lambda: login(stack.queries[1].url, "node-made").status_code == 200)
    clerk = bearer(login(stack.queries[1].url, "node-made"))
    assert users_status(stack.queries[0].url, clerk) == 403

    # The listener's refusals are the same answers a single process gives.
    again = httpx.post(
        f"{command}/api/v1/users",
        json={"username": "node-made", "role": "clerk", "password": PASSWORD},
        headers=admin,
        timeout=30,
    )
    assert again.status_code == 409 and again.json()["details"]["reason"] == "user_exists"
    unknown = httpx.patch(f"{command}/api/v1/users/nobody-here", json={"role": "clerk"}, headers=admin, timeout=30)
    assert unknown.status_code == 404
    short = httpx.post(f"{command}/api/v1/users/node-made/password", json={"password": "x"}, headers=admin, timeout=30)
    assert short.status_code == 400

    # Disabling the user on the command node ends its token on every node.
    disabled = httpx.patch(f"{command}/api/v1/users/node-made", json={"disabled": True}, headers=admin, timeout=30)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    for node in [*stack.commands, *stack.queries]:
        wait_until(lambda url=node.url: users_status(url, clerk) == 401)
    assert login(stack.queries[0].url, "node-made").status_code == 401


def test_a_wall_link_made_on_one_node_is_revoked_on_another(stack: NodeStack) -> None:
    admin = bearer(login(stack.queries[0].url, "admin"))
    made = httpx.post(
        f"{stack.queries[0].url}/api/v1/kiosk-links",
        json={"name": "Back office TV", "locations": ["S001"]},
        headers=admin,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    link_id = made.json()["id"]
    revoked = httpx.delete(f"{stack.queries[1].url}/api/v1/kiosk-links/{link_id}", headers=admin, timeout=30)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    listed = httpx.get(f"{stack.queries[1].url}/api/v1/kiosk-links", headers=admin, timeout=30).json()
    assert {link["id"]: link["state"] for link in listed}[link_id] == "revoked"


def test_logout_on_one_node_ends_the_session_on_the_others(stack: NodeStack) -> None:
    page = httpx.Client(base_url=stack.queries[0].url, timeout=30)
    page.get("/login")
    csrf = page.cookies["inventory_csrf"]
    logged_in = page.post("/login", data={"username": "manager", "password": PASSWORD, "_csrf_token": csrf})
    assert logged_in.status_code == 303, logged_in.text
    session = {"Authorization": f"Bearer {page.cookies['inventory_session']}"}
    for node in stack.processes():
        assert users_status(node.url, session) == 403  # accepted (a manager may not manage users)

    assert page.post("/logout", data={"_csrf_token": csrf}).status_code == 303
    # Refused on the node that logged out at once, on the others soon.
    assert users_status(stack.queries[0].url, session) == 401
    for node in [stack.queries[1], *stack.commands, stack.listener]:
        wait_until(lambda url=node.url: users_status(url, session) == 401)
    # Another session of the same user goes on.
    assert users_status(stack.queries[1].url, bearer(login(stack.queries[1].url, "manager"))) == 403


def test_the_accounts_endpoints_are_for_the_deployments_own_nodes(stack: NodeStack) -> None:
    listener = stack.listener.url
    for wrong in ({}, {"Authorization": "Bearer not-the-token"}):
        refused = httpx.get(f"{listener}/internal/accounts", headers=wrong, timeout=30)
        assert refused.status_code == 401 and refused.json()["error"] == "Unauthorized"
    own = internal(stack)
    copy = httpx.get(f"{listener}/internal/accounts", headers=own, timeout=30)
    assert copy.status_code == 200 and copy.content.startswith(b"SQLite format 3")
    same = httpx.get(
        f"{listener}/internal/accounts", headers={**own, "If-None-Match": copy.headers["ETag"]}, timeout=30
    )
    assert same.status_code == 304
    unknown = httpx.post(
        f"{listener}/internal/accounts/call",
        json={"target": "users", "method": "authenticate", "args": {"username": "admin", "password": PASSWORD}},
        headers=own,
        timeout=30,
    )
    assert unknown.status_code == 400 and unknown.json()["details"][0]["field"] == "method"
    # Nodes do not serve the accounts: only the listener holds them.
    assert httpx.get(f"{stack.queries[0].url}/internal/accounts", headers=own, timeout=30).status_code == 404


def test_without_the_listener_nodes_log_in_from_their_copy_and_refuse_changes(stack: NodeStack) -> None:
    # Last in this module: it stops the listener (and starts it again).
    admin = bearer(login(stack.commands[0].url, "admin"))
    stack.listener.stop()
    try:
        assert login(stack.queries[0].url, "clerk").status_code == 200
        assert users_status(stack.queries[1].url, admin) == 200
        refused = httpx.post(
            f"{stack.commands[0].url}/api/v1/users",
            json={"username": "while-away", "role": "clerk", "password": PASSWORD},
            headers=admin,
            timeout=30,
        )
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        assert refused.json()["error"] == "ServiceUnavailable"
    finally:
        stack.listener.start()
    made = httpx.post(
        f"{stack.commands[0].url}/api/v1/users",
        json={"username": "while-away", "role": "clerk", "password": PASSWORD},
        headers=admin,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    wait_until(lambda: login(stack.queries[0].url, "while-away").status_code == 200)
