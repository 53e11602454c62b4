"""`inventory submit`: a command of the catalogue from the console, with the same checks and the
same typed result as the API and the forms, against a running server on the embedded log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServiceProcess
from tests.support.services import REPO

ITEMS = "/api/v1/inventory/items"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ServiceProcess, dict[str, str]]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVENTORY_")} | {
        "INVENTORY_DATA_DIR": str(tmp_path / "data"),
        "INVENTORY_ADMIN_PASSWORD": "first-admin-pass",
        "INVENTORY_LOCATIONS": "MAIN,S001",
    }
    process = ServiceProcess("all", env, tmp_path / "all.log").start()
    try:
        yield process, env
    finally:
        process.stop()


def submit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "submit", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_submit_creates_reserves_and_reports_each_result(server: tuple[ServiceProcess, dict[str, str]]) -> None:
    process, env = server
    created = submit(env, "create", "sku=CLI-1", "name=From the console", "quantity=5", "location=s001")
    assert created.returncode == 0, created.stderr
    match = re.search(r"applied \S+ to item (\S+): version 1", created.stdout)
    assert match, created.stdout
    item_id = match.group(1)

    reserved = submit(env, "reserve", f"item={item_id}", "quantity=2", "location=S001")
    assert reserved.returncode == 0 and "version 2" in reserved.stdout, reserved.stdout + reserved.stderr

    too_many = submit(env, "reserve", f"item={item_id}", "quantity=9", "location=S001")
    assert too_many.returncode == 3 and "(insufficient_stock)" in too_many.stdout, too_many.stdout

    token = httpx.post(
        f"{process.url}/api/v1/auth/login", json={"username": "admin", "password": "first-admin-pass"}
    ).json()["token"]
    item = httpx.get(f"{process.url}{ITEMS}/{item_id}", headers={"Authorization": f"Bearer {token}"}).json()
    level = next(level for level in item["locations"] if level["location"] == "S001")
    assert (level["quantity"], level["reserved"]) == (5, 2)
    history = httpx.get(f"{process.url}{ITEMS}/{item_id}/history", headers={"Authorization": f"Bearer {token}"})
    assert {entry["actor"] for entry in history.json()["entries"]} == {"cli"}


def test_submit_refuses_bad_input_and_unknown_items_before_publishing(
    server: tuple[ServiceProcess, dict[str, str]],
) -> None:
    _, env = server
    bad = submit(env, "create", "sku=has space", "name=", "quantity=lots")
    assert bad.returncode == 2
    assert "quantity: must be a whole number" in bad.stderr and "sku:" in bad.stderr and "name:" in bad.stderr

    unknown = submit(env, "adjust", "item=6f9619ff-8b86-d011-b42d-00c04fc964ff", "quantity=1")
    assert unknown.returncode == 1 and "unknown_item" in unknown.stderr, unknown.stderr
