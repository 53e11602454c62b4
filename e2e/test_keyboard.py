"""The login form and a row's stock form work with the keyboard alone."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from e2e.support.api import Api
from e2e.support.ui import LIVE, NEWEST_BADGE_SCRIPT, newest_answer, newest_badge, row, row_available, tab_to
from tests.support.app import PASSWORD


def test_login_and_a_stock_form_work_with_the_keyboard_only(page: Page, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-KEY", "Rolled oats 500 g", quantity=10)

    page.add_init_script(NEWEST_BADGE_SCRIPT)
    page.goto(f"/login?next=/%3Fq%3D{tag}")
    tab_to(page, page.get_by_label("Username"))
    page.keyboard.type("clerk")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/\?q={tag}$"))
    expect(page.locator("#conn")).to_have_text(LIVE)

    stock_row = row(page, item["id"])
    summary = stock_row.get_by_role("button", name="Stock")
    tab_to(page, summary)
    page.keyboard.press("Enter")
    expect(stock_row.locator("details:has(.stock-form)")).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    quantity = stock_row.get_by_label("Quantity")
    expect(quantity).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("2")
    # Enter in the field submits with the form's first button: Reserve.
    page.keyboard.press("Enter")

    expect(newest_badge(page)).to_have_text("applied")
    expect(newest_answer(page)).to_contain_text(f"Reserve 2 · {tag}-KEY")
    expect(row_available(page, item["id"])).to_have_text(re.compile(r"^8\b"))
