"""The README's screenshots, taken with a real catalogue: `inventory demo --items 2000` loaded into
a deployment of its own (the same split roles, its own data and topics), so the shared
deployment's lists stay as the other tests expect them.

Each picture is also a check of what it shows: the dashboard answers a reserve next to its form,
the wall's first screen starts with what is out of stock and does not scroll, the low-stock page
starts with an empty shelf, and the phone layout does not scroll sideways. The pictures are kept
as test artifacts; `INVENTORY_UPDATE_SCREENSHOTS=1` also copies them to docs/screenshots."""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.support.ui import log_in, newest_badge, open_details
from tests.support.processes import run_cli
from tests.support.services import REPO
from tests.support.stack import Stack, split_stack

DOCS = REPO / "docs" / "screenshots"
STORE = "S001"
ITEMS = 2000
EMPTY_SHELF = "CAF-ESP-1KG"
DESKTOP = {"width": 1440, "height": 900}
WALL = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def demo_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("demo-data")
    logs = tmp_path_factory.mktemp("demo-logs")
    with split_stack(kafka_bootstrap, None, data_dir, logs, INVENTORY_LOCATIONS=f"MAIN,{STORE},S002") as running:
        published = run_cli(running.env, "demo", "--items", str(ITEMS))
        commands = int(re.search(r"published (\d+) commands", published.stdout)[1])  # type: ignore[index]
        _wait_until_applied(running, commands)
        # A shelf that has just run empty at the store: whatever else is low, it comes first.
        created = httpx.post(
            f"{running.command.url}/api/v1/inventory/items",
            json={"sku": EMPTY_SHELF, "name": "Espresso beans 1 kg", "quantity": 0, "location": STORE},
            headers={**running.token("manager"), "Prefer": "wait=20"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        yield running


def _wait_until_applied(stack: Stack, commands: int) -> None:
    """Until the listener applied every demo event (its readiness says how many it applied)."""
    deadline = time.monotonic() + 180
    while True:
        listener = httpx.get(f"{stack.listener.url}/api/v1/ready", timeout=10).json()["checks"]["listener"]
        if listener.get("applied", 0) >= commands and listener.get("consumer_lag") == 0:
            return
        assert time.monotonic() < deadline, listener
        time.sleep(0.5)


def _open(browser: Browser, stack: Stack, user: str, path: str, viewport: dict[str, int]) -> Page:
    page = browser.new_context(base_url=stack.query.url, viewport=viewport).new_page()
    log_in(page, user, path)
    return page


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def _shoot(page: Page, artifacts: Path, name: str, viewport: dict[str, int]) -> None:
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    shot = artifacts / name
    page.screenshot(path=shot)
    assert _png_size(shot) == (viewport["width"], viewport["height"])
    # Refresh the README's copies only when asked, so a test run leaves the checkout as it was.
    if os.environ.get("INVENTORY_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS / name)


def _no_sideways_scrolling(page: Page) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], width


def test_the_dashboard_answers_a_reserve_next_to_its_form(browser: Browser, demo_stack: Stack, artifacts: Path) -> None:
    dashboard = _open(browser, demo_stack, "manager", f"/?location={STORE}&sort=-available", DESKTOP)
    first = dashboard.locator("#rows tr").first
    open_details(first.get_by_role("button", name="Stock"))
    first.get_by_label("Quantity").fill("2")
    first.get_by_role("button", name="Reserve").click()
    expect(newest_badge(dashboard)).to_have_text("applied")
    # The answer is next to the form that sent it, not at the top of the page.
    expect(first.locator("p.badge strong.state")).to_have_text("applied")
    # The picture shows the list: the form folds away again.
    first.get_by_role("button", name="Stock").click()
    expect(first.locator("details:has(.stock-form)")).not_to_have_attribute("open", "")
    _shoot(dashboard, artifacts, "dashboard.png", DESKTOP)


def test_the_wall_of_a_real_catalogue_starts_with_what_is_out_and_fits_the_screen(
    browser: Browser, demo_stack: Stack, artifacts: Path
) -> None:
    wall = _open(browser, demo_stack, "viewer", f"/wall?location={STORE}", WALL)
    first = wall.locator("#tiles article.tile").first
    expect(first).to_have_class(re.compile(r"\bout\b"))
    expect(first).to_contain_text(EMPTY_SHELF)
    sizes = wall.evaluate("() => [document.documentElement.scrollHeight, innerHeight]")
    assert sizes[0] <= sizes[1], sizes
    _shoot(wall, artifacts, "wall.png", WALL)


def test_the_low_stock_page_starts_with_an_empty_shelf_and_names_a_source(
    browser: Browser, demo_stack: Stack, artifacts: Path
) -> None:
    page = _open(browser, demo_stack, "manager", "/low-stock", DESKTOP)
    first = page.locator("#low-rows tr.low-level").first
    expect(first).to_contain_text("Out of stock")
    expect(first).to_contain_text(EMPTY_SHELF)
    _shoot(page, artifacts, "low-stock.png", DESKTOP)


def test_on_a_phone_the_item_page_names_the_item_and_nothing_scrolls_sideways(
    browser: Browser, demo_stack: Stack, artifacts: Path
) -> None:
    page = _open(browser, demo_stack, "clerk", f"/?location={STORE}", PHONE)
    _no_sideways_scrolling(page)
    page.locator("#rows tr").first.get_by_role("link").first.click()
    expect(page.locator("h1")).to_contain_text(re.compile(r"[A-Z]{3}-"))
    expect(page.locator("#conn")).to_have_text("Live")
    _no_sideways_scrolling(page)
    _shoot(page, artifacts, "phone.png", PHONE)
