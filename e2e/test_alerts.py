"""Stock alerts in Chromium: an item set to 0 shows an "out of stock" alert live on the low-stock
page's "Recent alerts" and on the wall's alert line, then "back in stock" when it is restocked,
without a reload; the wall's line keeps its grid on one screen at TV and laptop sizes and wraps
on a phone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from e2e.support.api import Api
from e2e.support.ui import LoggedIn, mark_document, same_document

STORE = "S002"
SIZES = {"tv": (1920, 1080), "laptop": (1366, 768), "phone": (390, 844)}


def _wall(logged_in: LoggedIn, tag: str, width: int, height: int) -> Page:
    # The wall of this test's SKUs only: the other tests' alerts at the store are not its own.
    return logged_in("viewer", f"/wall?location={STORE}&sku={tag}", viewport={"width": width, "height": height})


def test_an_item_set_to_zero_alerts_live_on_the_low_stock_page_and_the_wall(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(
        f"{tag}-ALERT", "Espresso cups, set of 6", quantity=20, location=STORE, low_stock_threshold=5
    )
    low = logged_in("viewer", f"/low-stock?location={STORE}")
    wall = _wall(logged_in, tag, *SIZES["tv"])
    line = wall.locator("#wall-alert")
    expect(line).to_have_text("No stock alerts")
    expect(low.get_by_role("heading", name="Recent alerts")).to_be_visible()
    mark_document(low)
    mark_document(wall)

    assert api.move(item["id"], "adjust", -20, location=STORE).status_code == 200
    newest = low.locator("#alert-list li.alert-entry").first
    expect(newest).to_contain_text(f"{tag}-ALERT")
    expect(newest).to_contain_text("Espresso cups, set of 6")
    expect(newest.locator(".alert-kind")).to_have_text("Out of stock")
    expect(newest.locator(".location")).to_have_text(STORE)
    expect(newest.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-.+Z$"))
    expect(line).to_have_class("wall-alert out_of_stock")
    expect(line.locator(".wall-alert-kind")).to_have_text("Out of stock")
    expect(line.locator(".wall-alert-sku")).to_have_text(f"{tag}-ALERT")

    # A trickle back (1 unit, within the margin) is no news; 10 units are back in stock.
    assert api.move(item["id"], "adjust", 1, location=STORE).status_code == 200
    assert api.move(item["id"], "adjust", 9, location=STORE).status_code == 200
    expect(newest.locator(".alert-kind")).to_have_text("Back in stock")
    expect(low.locator(f"#alert-list li.alert-entry:has-text('{tag}-ALERT')")).to_have_count(2)
    expect(line.locator(".wall-alert-kind")).to_have_text("Back in stock")
    expect(line).to_contain_text("10 available")
    assert same_document(low)
    assert same_document(wall)

    # A reload draws the same, from what is stored.
    low.reload()
    expect(low.locator("#alert-list li.alert-entry").first.locator(".alert-kind")).to_have_text("Back in stock")


@pytest.mark.parametrize("size", list(SIZES))
def test_the_wall_alert_line_keeps_the_grid_on_screen(
    logged_in: LoggedIn, api: Api, tag: str, size: str, artifacts: Path
) -> None:
    width, height = SIZES[size]
    for n in range(3):
        made = api.create_item(f"{tag}-{n}", f"Long name of a cotton tea towel number {n}", quantity=9, location=STORE)
        assert api.move(made["id"], "adjust", -9, location=STORE).status_code == 200
    wall = _wall(logged_in, tag, width, height)
    line = wall.locator("#wall-alert")
    expect(line.locator(".wall-alert-kind")).to_have_text("Out of stock")
    expect(line).to_have_attribute("role", "status")
    # Measured in one go in the page: the line is replaced whenever a screen of tiles loads.
    box, tiles, scroll = wall.evaluate(
        """() => [document.getElementById("wall-alert").getBoundingClientRect().toJSON(),
                  document.getElementById("tiles").getBoundingClientRect().toJSON(),
                  [document.documentElement.scrollWidth, document.documentElement.scrollHeight]]"""
    )
    wall.screenshot(path=str(artifacts / f"wall-alert-{size}.png"))
    assert box["left"] >= 0 and box["right"] <= width and box["height"] > 0
    assert scroll[0] <= width  # never sideways
    if size != "phone":
        # One screen: the grid below the line ends inside the window, nothing to scroll.
        assert scroll[1] <= height
        assert box["bottom"] <= tiles["top"] and tiles["bottom"] <= height
