"""The stock wall with a real catalogue: 2,000 items at a store on a 1920x1080 screen.

It runs on a deployment of its own (the same split roles, its own data and topics), with a store
that holds 2,000 items: the shared deployment's walls and lists stay as the other tests expect
them."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from e2e.support.api import ITEMS, Api
from e2e.support.ui import LIVE, RECONNECTING, log_in, mark_document, same_document
from tests.support.stack import Stack, split_stack

STORE = "S900"
ITEM_COUNT = 2000
OUT = 4  # out of stock: named to sort last by name, so only the urgency puts them first
LOW = 30
DESKTOP = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
SCREEN = 20  # tiles on one screen at the normal density (5 x 4)


@pytest.fixture(scope="module")
def wall_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("wall-data")
    logs = tmp_path_factory.mktemp("wall-logs")
    with split_stack(kafka_bootstrap, None, data_dir, logs, INVENTORY_LOCATIONS=f"MAIN,{STORE}") as running:
        yield running


def _body(n: int) -> dict[str, Any]:
    if n < OUT:
        return {"sku": f"OUT-{n:04d}", "name": f"Zz out {n}", "quantity": 0}
    if n < OUT + LOW:
        return {"sku": f"LOW-{n:04d}", "name": f"Yy low {n}", "quantity": 1 + n % 4}
    return {"sku": f"OK-{n:04d}", "name": f"Item {n:04d}", "quantity": 20 + n % 80}


@pytest.fixture(scope="module")
def catalogue(wall_stack: Stack) -> list[dict[str, Any]]:
    """2,000 items created at the store through the command API (accepted, then applied by the
    listener); their ids in creation order."""
    headers = wall_stack.token("manager")
    started = time.monotonic()
    with httpx.Client(base_url=wall_stack.command.url, headers=headers, timeout=30) as client:

        def create(n: int) -> dict[str, Any]:
            response = client.post(ITEMS, json={**_body(n), "location": STORE})
            assert response.status_code == 202, response.text
            return {"n": n, "id": response.json()["item_id"], **_body(n)}

        with ThreadPoolExecutor(max_workers=8) as pool:
            items = list(pool.map(create, range(ITEM_COUNT)))
    with httpx.Client(base_url=wall_stack.query.url, headers=wall_stack.token("viewer"), timeout=30) as client:
        deadline = time.monotonic() + 120
        while True:
            listed = client.get(ITEMS, params={"location": STORE, "page_size": 1}).json()
            if listed["total"] == ITEM_COUNT or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert listed["total"] == ITEM_COUNT
    print(f"\n{ITEM_COUNT} items created and applied in {time.monotonic() - started:.1f} s")
    return items


def open_wall(browser: Browser, stack: Stack, path: str, viewport: dict[str, int]) -> Page:
    context = browser.new_context(base_url=stack.query.url, viewport=viewport)
    page = context.new_page()
    log_in(page, "viewer", path)
    return page


def tile_ids(page: Page) -> list[str]:
    return list(page.locator("#tiles article.tile").evaluate_all("tiles => tiles.map(t => t.id)"))


def on_screen(page: Page, selector: str) -> bool:
    return bool(
        page.evaluate(
            """selector => {
              const el = document.querySelector(selector);
              if (!el) return false;
              const box = el.getBoundingClientRect();
              return box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight && box.right <= innerWidth;
            }""",
            selector,
        )
    )


def assert_no_scrolling(page: Page) -> None:
    sizes = page.evaluate(
        """() => ({
          height: document.documentElement.scrollHeight, inner: innerHeight,
          width: document.documentElement.scrollWidth, innerWidth: innerWidth,
        })"""
    )
    assert sizes["height"] <= sizes["inner"], sizes
    assert sizes["width"] <= sizes["innerWidth"], sizes


def test_a_wall_of_2000_items_shows_the_out_of_stock_first_fits_the_screen_and_takes_a_new_out_at_once(
    browser: Browser, wall_stack: Stack, catalogue: list[dict[str, Any]], artifacts: Path
) -> None:
    # A long rotation: this screen stays while it is looked at (the next test turns the pages).
    wall = open_wall(browser, wall_stack, f"/wall?location={STORE}&rotate=3600", DESKTOP)
    out_ids = [f"tile-{item['id']}" for item in catalogue[:OUT]]
    low_ids = {f"tile-{item['id']}" for item in catalogue[OUT : OUT + LOW]}

    tiles = wall.locator("#tiles article.tile")
    expect(tiles).to_have_count(SCREEN)
    shown = tile_ids(wall)
    # Out first (whatever their names), then the low ones: the first screen is what needs attention.
    assert shown[:OUT] == out_ids, shown
    assert set(shown[OUT:]) <= low_ids, shown
    for tile_id in out_ids:
        expect(wall.locator(f"#{tile_id}")).to_have_class(re.compile(r"\bout\b"))
        assert on_screen(wall, f"#{tile_id}")
    status = wall.locator("#wall-status")
    expect(status).to_contain_text(f"{OUT} out")
    expect(status).to_contain_text(f"{LOW} low")
    expect(status).to_contain_text(f"{ITEM_COUNT} items")
    expect(status).to_contain_text(f"Page 1/{ITEM_COUNT // SCREEN}")
    assert_no_scrolling(wall)
    for tile_id in shown:
        assert on_screen(wall, f"#{tile_id}"), tile_id
    # Readable from across the shop: the SKU in type of 40 px or more on a 1080p screen.
    sku_size = wall.locator("#tiles .tile-sku").first.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
    assert sku_size >= 40, sku_size
    wall.screenshot(path=str(artifacts / "wall-2000-items.png"))

    # An item far down the list (page 50 of 100 by name) is set to 0 at the till.
    target = catalogue[1000]
    selector = f"#tile-{target['id']}"
    assert wall.locator(selector).count() == 0
    wall.evaluate(
        """selector => {
          window.__tileSeenAt = null;
          const seen = () => {
            if (window.__tileSeenAt === null && document.querySelector("#tiles " + selector)) {
              window.__tileSeenAt = Date.now();
            }
          };
          new MutationObserver(seen).observe(document.getElementById("tiles"), {childList: true, subtree: true});
        }""",
        selector,
    )
    answer = Api(wall_stack).move(target["id"], "adjust", -target["quantity"], location=STORE)
    outcome_at = time.time() * 1000
    assert answer.status_code == 200, answer.text
    tile = wall.locator(f"#tiles {selector}")
    expect(tile).to_have_class(re.compile(r"\bout\b"), timeout=10_000)
    seen_at = wall.evaluate("() => window.__tileSeenAt")
    print(f"\nthe new out-of-stock tile was on screen {seen_at - outcome_at:.0f} ms after the command's outcome")
    # At its place among the out ones (by name: "Item 1000" before "Zz out ..."), on screen, and
    # the screen still holds one screenful: the least urgent tile made room.
    after = tile_ids(wall)
    assert after[: OUT + 1] == [selector[1:], *out_ids], after
    assert len(after) == SCREEN and shown[-1] not in after
    assert on_screen(wall, selector)
    expect(tile.locator(".tile-available")).to_have_text("0")
    assert_no_scrolling(wall)


def test_the_wall_turns_to_the_next_screen_on_its_timer_and_back_to_the_first(
    browser: Browser, wall_stack: Stack, catalogue: list[dict[str, Any]]
) -> None:
    # Only what needs attention (35 or so), a few screens at the large density (4 x 3).
    wall = open_wall(browser, wall_stack, f"/wall?location={STORE}&show=attention&density=large&rotate=5", DESKTOP)
    status = wall.locator("#wall-status")
    expect(status).to_have_attribute("data-page", "1")
    pages = int(status.get_attribute("data-pages") or "0")
    assert pages >= 3
    first = tile_ids(wall)
    assert len(first) == 12
    for tile in wall.locator("#tiles article.tile").all():
        expect(tile).to_have_class(re.compile(r"\b(out|low)\b"))
    expect(status).to_have_attribute("data-page", "2", timeout=20_000)
    expect(status).to_contain_text(f"Page 2/{pages}")
    second = tile_ids(wall)
    assert len(second) == 12 and not set(second) & set(first)
    # After the last screen, the first again.
    expect(status).to_have_attribute("data-page", "1", timeout=20_000 * pages)
    expect(wall.locator("#conn")).to_have_text(LIVE)
    assert_no_scrolling(wall)


def test_after_a_restart_of_the_query_service_the_wall_reloads_its_screen_with_what_changed_meanwhile(
    browser: Browser, wall_stack: Stack, catalogue: list[dict[str, Any]]
) -> None:
    wall = open_wall(browser, wall_stack, f"/wall?location={STORE}&rotate=3600", DESKTOP)
    expect(wall.locator("#tiles article.tile")).to_have_count(SCREEN)
    conn = wall.locator("#conn")
    mark_document(wall)
    target = catalogue[1500]
    wall_stack.query.stop()
    try:
        expect(conn).to_have_text(RECONNECTING)
        # Sold out while the wall cannot hear of it.
        answer = Api(wall_stack).move(target["id"], "adjust", -target["quantity"], location=STORE)
        assert answer.status_code == 200, answer.text
    finally:
        wall_stack.query.start()
    expect(conn).to_have_text(LIVE, timeout=60_000)
    # The stream's resync reloaded the screen: the new out-of-stock tile is on it, without a reload.
    expect(wall.locator(f"#tiles #tile-{target['id']}")).to_have_class(re.compile(r"\bout\b"))
    expect(wall.locator("#tiles article.tile")).to_have_count(SCREEN)
    assert same_document(wall)


def test_the_wall_on_a_phone_scrolls_down_only(
    browser: Browser, wall_stack: Stack, catalogue: list[dict[str, Any]], artifacts: Path
) -> None:
    wall = open_wall(browser, wall_stack, f"/wall?location={STORE}&rotate=3600", PHONE)
    expect(wall.locator("#tiles article.tile")).to_have_count(SCREEN)
    sizes = wall.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    assert sizes[0] <= sizes[1], sizes
    wall.screenshot(path=str(artifacts / "wall-phone.png"), full_page=True)


def test_a_wall_url_with_an_unknown_store_or_absurd_options_says_what_is_wrong(
    browser: Browser, wall_stack: Stack
) -> None:
    context = browser.new_context(base_url=wall_stack.query.url, viewport=DESKTOP)
    page = context.new_page()
    log_in(page, "viewer", f"/wall?location={STORE}")
    for query, says in [
        ("location=S404", "unknown location S404"),
        ("location=S900&rotate=1", "rotate must be from 5 to 3600"),
        ("location=S900&density=enormous", "density must be one of large, normal, compact"),
    ]:
        response = page.goto(f"/wall?{query}")
        assert response is not None and response.status == 400
        expect(page.get_by_role("alert")).to_contain_text(says)
        expect(page.get_by_role("heading", name="This wall cannot be shown")).to_be_visible()
