"""Commands from the dashboard's forms: the badge of each command, and the rows of every open dashboard."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from e2e.support.api import Api
from e2e.support.ui import (
    LoggedIn,
    badge_states,
    mark_document,
    newest_answer,
    newest_badge,
    open_details,
    record_badge_states,
    row,
    row_available,
    same_document,
)


def test_new_item_form_shows_pending_then_applied_and_the_row_appears_live_for_another_user(
    logged_in: LoggedIn, tag: str
) -> None:
    manager = logged_in("manager", f"/?q={tag}")
    viewer = logged_in("viewer", f"/?q={tag}")
    sku = f"{tag}-NEW"
    expect(viewer.locator("#rows tr", has_text=sku)).to_have_count(0)
    mark_document(viewer)

    record_badge_states(manager)
    open_details(manager.get_by_role("button", name="New item"))
    form = manager.locator("#create-form")
    form.get_by_label("SKU").fill(sku)
    form.get_by_label("Name").fill("Oat milk 1 l")
    form.get_by_label("Initial quantity").fill("12")
    with manager.expect_response(lambda r: r.url.endswith("/ui/items") and r.request.method == "POST") as answer:
        form.get_by_role("button", name="Create item").click()
    assert answer.value.status == 202

    badge = newest_badge(manager)
    expect(newest_answer(manager)).to_contain_text(sku)
    expect(badge).to_have_text("applied")
    assert badge_states(manager)[0] == "pending", badge_states(manager)
    assert badge_states(manager)[-1] == "applied"

    # The other user's dashboard gets the row over its live stream: no reload, no navigation.
    new_row = viewer.locator("#rows tr", has_text=sku)
    expect(new_row).to_have_count(1)
    expect(new_row).to_have_id(re.compile(r"^row-[0-9a-f-]{36}$"))
    expect(new_row.locator("td.available")).to_have_text(re.compile(r"^12\b"))
    expect(viewer.locator("#rows tr[data-placeholder]")).to_have_count(0)
    expect(manager.locator("#rows tr", has_text=sku)).to_have_count(1)
    assert same_document(viewer)


def test_reserving_more_than_available_from_a_row_shows_rejected_insufficient_stock(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-FEW", "Espresso beans 1 kg", quantity=3)
    clerk = logged_in("clerk", f"/?q={tag}")
    expect(row_available(clerk, item["id"])).to_have_text(re.compile(r"^3\b"))

    record_badge_states(clerk)
    stock_row = row(clerk, item["id"])
    open_details(stock_row.get_by_role("button", name="Stock"))
    stock_row.get_by_label("Quantity").fill("4")
    stock_row.get_by_role("button", name="Reserve").click()

    badge = newest_badge(clerk)
    expect(badge).to_have_text(re.compile(r"^rejected: insufficient_stock\b"))
    assert badge_states(clerk)[0] == "pending", badge_states(clerk)
    expect(newest_answer(clerk)).to_contain_text(f"Reserve 4 · {tag}-FEW")
    # Nothing moved.
    expect(row_available(clerk, item["id"])).to_have_text(re.compile(r"^3\b"))
    assert api.item(item["id"])["reserved"] == 0


def test_an_invalid_sku_shows_its_error_next_to_the_field_and_an_invalid_badge(logged_in: LoggedIn, tag: str) -> None:
    manager = logged_in("manager", f"/?q={tag}")
    open_details(manager.get_by_role("button", name="New item"))
    form = manager.locator("#create-form")
    form.get_by_label("SKU").fill("bad sku")
    form.get_by_label("Name").fill("Anything")
    with manager.expect_response(lambda r: r.url.endswith("/ui/items") and r.request.method == "POST") as answer:
        form.get_by_role("button", name="Create item").click()
    assert answer.value.status == 400

    sku_error = manager.locator("#create-sku-error")
    expect(sku_error).to_be_visible()
    expect(sku_error).not_to_have_text("")
    expect(manager.locator("#create-name-error")).to_have_text("")
    expect(newest_badge(manager)).to_have_text("invalid")
    # The form keeps what was typed, so it can be corrected.
    expect(form.get_by_label("SKU")).to_have_value("bad sku")

    # Corrected, it goes through and the error next to the field is cleared.
    form.get_by_label("SKU").fill(f"{tag}-FIXED")
    form.get_by_role("button", name="Create item").click()
    expect(sku_error).to_have_text("")
    expect(sku_error).to_be_hidden()
    expect(newest_badge(manager)).to_have_text("applied")
    expect(manager.locator("#rows tr", has_text=f"{tag}-FIXED")).to_have_count(1)


def test_a_manager_edits_and_deletes_an_item_from_its_dashboard_row(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-EDIT", "Rye bread", quantity=4)
    manager = logged_in("manager", f"/?q={tag}")
    item_row = row(manager, item["id"])
    open_details(item_row.get_by_role("button", name="Item", exact=True))
    item_row.get_by_label("Name").fill("Rye bread, sliced")
    item_row.get_by_role("button", name="Save").click()
    expect(newest_badge(manager)).to_have_text("applied")
    expect(row(manager, item["id"]).locator("td").nth(1)).to_have_text("Rye bread, sliced")

    manager.once("dialog", lambda dialog: dialog.accept())
    open_details(row(manager, item["id"]).get_by_role("button", name="Item", exact=True))
    row(manager, item["id"]).get_by_role("button", name="Delete item").click()
    expect(newest_badge(manager)).to_have_text("applied")
    expect(row(manager, item["id"])).to_have_count(0)  # removed over the live stream
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        api.item(item["id"])
