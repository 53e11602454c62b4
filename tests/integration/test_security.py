"""Who may do what, and what the services refuse before it reaches the domain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from app.application import create_app
from tests.conftest import running_app
from tests.support.app import PASSWORD, base_env, item_body, login
from tests.support.services import REPO

ITEMS = "/api/v1/inventory/items"


def test_production_refuses_to_start_with_a_development_or_missing_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    env |= {"INVENTORY_DATA_DIR": str(tmp_path), "INVENTORY_ENV": "prod"}
    for secret in (None, "dev-" + "x" * 40, "short"):
        run_env = env | ({"INVENTORY_JWT_SECRET": secret} if secret else {})
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--role", "all", "--port", "1"],
            cwd=REPO, env=run_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "INVENTORY_JWT_SECRET" in result.stderr


def _form_routes(app: Litestar) -> list[str]:
    return sorted(
        route.path
        for route in app.routes
        if route.path.startswith("/ui/") and "POST" in getattr(route, "methods", set())
    )


async def test_every_form_post_needs_the_csrf_token(data_dir: Path) -> None:
    async with running_app(base_env(data_dir)) as (client, container):
        routes = _form_routes(create_app(container))
        assert len(routes) >= 7  # create, edit, delete, adjust, reserve, release, dead-letter replay
        page = await client.post("/login", data={"username": "admin", "password": PASSWORD})
        assert page.status_code == 403  # the login form itself needs the token
        login_page = await client.get("/login")
        token = client.cookies.get("inventory_csrf")
        assert token and token in login_page.text
        logged_in = await client.post(
            "/login", data={"username": "admin", "password": PASSWORD, "_csrf_token": token}, follow_redirects=False
        )
        assert logged_in.status_code == 303 and client.cookies.get("inventory_session")
        for route in routes:
            path = route.replace("{item_id:str}", "00000000-0000-0000-0000-000000000000").replace(
                "{letter_id:int}", "1"
            )
            refused = await client.post(path, data={"quantity": "1", "sku": "A", "name": "x"})
            assert refused.status_code == 403, (route, refused.status_code)
            accepted = await client.post(path, data={"quantity": "1"}, headers={"X-CSRFToken": token})
            assert accepted.status_code != 403, (route, accepted.text)


async def test_logins_are_rate_limited(data_dir: Path) -> None:
    async with running_app(base_env(data_dir, INVENTORY_LOGIN_ATTEMPTS_PER_MINUTE="5")) as (client, _):
        statuses = [
            (await client.post("/api/v1/auth/login", json={"username": "admin", "password": "guess"})).status_code
            for _ in range(7)
        ]
        assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
        limited = await client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        # Other users are not locked out by someone guessing admin's password.
        assert (
            await client.post("/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD})
        ).status_code == 200


async def test_a_huge_header_or_body_is_refused_cleanly(data_dir: Path) -> None:
    async with running_app(base_env(data_dir)) as (client, _):
        headers = await login(client, "admin")
        too_big = await client.post(ITEMS, json=item_body(name="n" * 100_000), headers=headers)
        assert too_big.status_code == 413
        weird = await client.post(ITEMS, json=item_body(), headers={**headers, "X-Request-ID": "x" * 5000})
        assert weird.status_code == 202 and weird.headers["X-Request-ID"] != "x" * 5000  # not echoed back


def test_a_huge_header_never_reaches_the_application(tmp_path: Path) -> None:
    from tests.support.processes import ServiceProcess

    service = ServiceProcess("all", base_env(tmp_path / "data"), tmp_path / "all.log").start()
    try:
        response = httpx.get(f"{service.url}/api/v1/health", headers={"X-Filler": "y" * 200_000})
        assert response.status_code == 431 and response.json()["error"] == "HeadersTooLarge"
        assert response.headers["X-Request-ID"]
        assert httpx.get(f"{service.url}/api/v1/health").status_code == 200
    finally:
        service.stop()


@pytest.mark.parametrize("user", ["viewer", "clerk"])
async def test_roles_below_manager_cannot_touch_items(data_dir: Path, user: str) -> None:
    async with running_app(base_env(data_dir)) as (client, _):
        headers = await login(client, user)
        manager = await login(client, "manager")
        item = (await client.post(ITEMS, json=item_body(quantity=5), headers={**manager, "Prefer": "wait=10"})).json()
        for method, path, body in (
            ("POST", ITEMS, item_body()),
            ("PUT", f"{ITEMS}/{item['id']}", {"name": "x"}),
            ("DELETE", f"{ITEMS}/{item['id']}", None),
            ("POST", "/api/v1/dead-letters/1/replay", None),
        ):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (method, path)
        reserve = await client.post(f"{ITEMS}/{item['id']}/reserve", json={"quantity": 1}, headers=headers)
        assert reserve.status_code == (202 if user == "clerk" else 403)
