"""The low-stock page in Chromium: an item that runs out appears on top of the page without a
reload, with the store to ask for more; when it is restocked it leaves; a low level updates in
place."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from e2e.support.api import Api
from e2e.support.ui import LoggedIn, mark_document, same_document

STORE = "S002"


def _row(page: Page, item_id: str, location: str = STORE) -> Locator:
    return page.locator(f"#low-{item_id}-{location}")


def test_an_item_set_to_zero_appears_on_top_live_and_leaves_when_restocked(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    # A threshold above any other's: once out, it is also the most urgent by the page's order.
    item = api.create_item(f"{tag}-OUT", "Espresso beans 1 kg", quantity=1000, location=STORE, low_stock_threshold=900)
    assert api.move(item["id"], "adjust", 40, location="MAIN").status_code == 200
    page = logged_in("viewer", f"/low-stock?location={STORE}")
    mark_document(page)
    expect(_row(page, item["id"])).to_have_count(0)

    assert api.move(item["id"], "adjust", -1000, location=STORE).status_code == 200
    first = page.locator("#low-rows tr.low-level").first
    expect(first).to_have_id(f"low-{item['id']}-{STORE}")
    expect(first).to_contain_text(f"{tag}-OUT")
    expect(first).to_contain_text("Espresso beans 1 kg")
    expect(first.locator(".state")).to_have_text("Out of stock")
    expect(first.locator(".best")).to_have_text("MAIN: 40 available")
    expect(first.locator(".best a")).to_have_attribute("href", f"/items/{item['id']}")

    # Some come back: still low, updated where it is.
    assert api.move(item["id"], "adjust", 7, location=STORE).status_code == 200
    expect(_row(page, item["id"]).locator(".available")).to_have_text("7")
    expect(_row(page, item["id"]).locator(".state")).to_have_text("Low")
    # The best source moves with the other store's stock.
    assert api.move(item["id"], "adjust", -15, location="MAIN").status_code == 200
    expect(_row(page, item["id"]).locator(".best")).to_have_text("MAIN: 25 available")
    assert same_document(page)

    # After a reload it is still first: the page's own order (out of stock, furthest below first).
    assert api.move(item["id"], "adjust", -7, location=STORE).status_code == 200
    expect(_row(page, item["id"]).locator(".available")).to_have_text("0")
    page.reload()
    expect(page.locator("#low-rows tr.low-level").first).to_have_id(f"low-{item['id']}-{STORE}")

    mark_document(page)
    assert api.move(item["id"], "adjust", 1000, location=STORE).status_code == 200
    expect(_row(page, item["id"])).to_have_count(0)
    assert same_document(page)


def test_the_chain_wide_page_lists_every_store_and_links_to_the_item(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-TWO", "Oat milk 1 l", quantity=2, location="S001", low_stock_threshold=900)
    assert api.move(item["id"], "adjust", 1, location=STORE).status_code == 200
    page = logged_in("viewer", "/low-stock")
    expect(page.get_by_role("heading", name="Low stock")).to_be_visible()
    expect(_row(page, item["id"], "S001")).to_contain_text(f"{tag}-TWO")
    expect(_row(page, item["id"], STORE)).to_contain_text("S001: 2 available")
    page.get_by_role("link", name=f"{tag}-TWO").first.click()
    expect(page).to_have_url(re.compile(f"/items/{item['id']}$"))
