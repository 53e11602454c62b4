"""Live pages: the stock wall follows the dashboard's commands, and a page survives a restart of
the query service that serves it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from e2e.support.api import Api
from e2e.support.ui import (
    LIVE,
    RECONNECTING,
    LoggedIn,
    mark_document,
    newest_badge,
    open_details,
    row,
    row_available,
    same_document,
    tile_available,
)
from tests.support.stack import Stack


def test_the_wall_tile_changes_live_after_a_reserve_from_the_dashboard(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-WALL", "Sourdough loaf", quantity=10, location="MAIN")
    wall = logged_in("viewer", f"/wall?location=MAIN&sku={tag}")
    tile = wall.locator(f"article#tile-{item['id']}")
    expect(tile_available(wall, item["id"])).to_have_text("10")
    expect(tile).to_have_class(re.compile(r"\bok\b"))
    mark_document(wall)

    clerk = logged_in("clerk", f"/?q={tag}")
    stock_row = row(clerk, item["id"])
    open_details(stock_row.get_by_role("button", name="Stock"))
    stock_row.get_by_label("Quantity").fill("6")
    stock_row.get_by_role("button", name="Reserve").click()
    expect(newest_badge(clerk)).to_have_text("applied")

    # The wall was not touched: the new level and the low-stock colour arrive over its stream.
    expect(tile_available(wall, item["id"])).to_have_text("4")
    expect(tile).to_have_class(re.compile(r"\blow\b"))
    expect(tile.locator(".tile-detail")).to_contain_text("6 reserved")

    # And from an API client (a till), the same.
    assert api.move(item["id"], "reserve", 4, location="MAIN").status_code == 200
    expect(tile_available(wall, item["id"])).to_have_text("0")
    expect(tile).to_have_class(re.compile(r"\bout\b"))
    assert same_document(wall)


def test_the_dashboard_reconnects_after_a_query_service_restart_and_shows_what_changed_meanwhile(
    logged_in: LoggedIn, api: Api, stack: Stack, tag: str
) -> None:
    kept = api.create_item(f"{tag}-KEPT", "Rye bread", quantity=8)
    page = logged_in("viewer", f"/?q={tag}")
    conn = page.locator("#conn")
    expect(row_available(page, kept["id"])).to_have_text(re.compile(r"^8\b"))
    mark_document(page)

    stack.query.stop()
    try:
        expect(conn).to_have_text(RECONNECTING)
        expect(conn).to_have_class(re.compile(r"\blost\b"))
        # Changes while the page's server is away: nothing can reach the page now.
        assert api.move(kept["id"], "reserve", 3).status_code == 200
        added = api.create_item(f"{tag}-ADDED", "Butter croissant", quantity=5)
        expect(conn).to_have_text(RECONNECTING)
    finally:
        stack.query.start()

    expect(conn).to_have_text(LIVE, timeout=60_000)
    expect(conn).to_have_class(re.compile(r"\blive\b"))
    # The stream's resync made the page reload its rows: both changes are there, without a reload.
    expect(row_available(page, kept["id"])).to_have_text(re.compile(r"^5\b"))
    expect(row(page, added["id"])).to_contain_text(f"{tag}-ADDED")
    expect(page.locator("#rows tr")).to_have_count(2)
    assert same_document(page)


def test_a_live_update_keeps_an_open_stock_form_and_what_was_typed(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-FORM", "Rye crackers", quantity=20)
    clerk = logged_in("clerk", f"/?q={tag}")
    stock_row = row(clerk, item["id"])
    open_details(stock_row.get_by_role("button", name="Stock"))
    stock_row.get_by_label("Quantity").fill("7")

    # Someone else changes the item: the row is replaced by the pushed one...
    assert api.move(item["id"], "reserve", 3).status_code == 200
    expect(row_available(clerk, item["id"])).to_have_text(re.compile(r"^17\b"))
    # ...and the form the clerk was filling in is still open, with the 7 in it.
    expect(stock_row.locator("details:has(.stock-form)")).to_have_attribute("open", "")
    expect(stock_row.locator("details:has(.item-form)")).to_have_count(0)  # a clerk has no item forms
    expect(stock_row.get_by_label("Quantity")).to_have_value("7")
