"""What a page may not do: commands beyond the user's role, requests without the CSRF token,
and markup smuggled in through item data."""

from __future__ import annotations

import re

from playwright.sync_api import Dialog, Page, expect

from e2e.support.api import Api
from e2e.support.ui import (
    LoggedIn,
    csrf_token,
    goto_live,
    newest_badge,
    open_details,
    post_from_page,
    row,
    row_available,
)
from tests.support.stack import Stack

SCRIPT_NAME = "<script>alert(1)</script>"
IMG_DESCRIPTION = '<img src=x onerror="alert(2)">'


def test_a_viewer_sees_no_command_forms_and_a_forged_command_from_its_browser_is_refused(
    logged_in: LoggedIn, api: Api, stack: Stack, tag: str
) -> None:
    item = api.create_item(f"{tag}-RO", "Cheddar 200 g", quantity=5)
    viewer = logged_in("viewer", f"/?q={tag}")
    expect(row(viewer, item["id"])).to_be_visible()
    expect(viewer.get_by_role("button", name="New item")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Stock")).to_have_count(0)
    expect(viewer.locator("form[hx-post]")).to_have_count(0)
    expect(viewer.get_by_role("columnheader", name="Actions")).to_have_count(0)

    # The session cookie and a valid CSRF token are not enough: the role decides, whether the
    # request comes from a script in the page or from outside it with the same cookies.
    reserve = f"{stack.command.url}/ui/items/{item['id']}/reserve"
    form = {"quantity": "1", "location": "MAIN"}
    token = {"X-CSRFToken": csrf_token(viewer)}
    assert post_from_page(viewer, reserve, form, token) == 403
    forged = viewer.request.post(reserve, form=dict(form), headers=token)
    assert forged.status == 403, forged.text()
    assert api.item(item["id"])["reserved"] == 0


def test_a_form_post_without_the_csrf_token_is_refused_even_with_the_session_cookie(
    logged_in: LoggedIn, api: Api, stack: Stack, tag: str
) -> None:
    item = api.create_item(f"{tag}-CSRF", "Butter 250 g", quantity=5)
    clerk = logged_in("clerk", f"/?q={tag}")
    expect(row(clerk, item["id"])).to_be_visible()
    reserve = f"{stack.command.url}/ui/items/{item['id']}/reserve"

    without_token = clerk.request.post(reserve, form={"quantity": "1", "location": "MAIN"})
    assert without_token.status == 403, without_token.text()
    wrong_token = clerk.request.post(
        reserve, form={"quantity": "1", "location": "MAIN"}, headers={"X-CSRFToken": "not-the-token"}
    )
    assert wrong_token.status == 403, wrong_token.text()
    assert api.item(item["id"])["reserved"] == 0

    # The same request with the page's token goes through: the token was what was missing.
    with_token = clerk.request.post(
        reserve, form={"quantity": "1", "location": "MAIN"}, headers={"X-CSRFToken": csrf_token(clerk)}
    )
    assert with_token.status == 202, with_token.text()
    expect(row_available(clerk, item["id"])).to_have_text(re.compile(r"^4\b"))


def _fail_on_dialogs(page: Page, dialogs: list[str]) -> None:
    def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)


def test_markup_in_item_data_is_shown_as_text_on_the_dashboard_item_page_and_wall(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    dialogs: list[str] = []
    page = logged_in("manager", f"/?q={tag}")
    _fail_on_dialogs(page, dialogs)

    # Arrives over the live stream first (an out-of-band swap)...
    item = api.create_item(f"{tag}-XSS", SCRIPT_NAME, description=IMG_DESCRIPTION, quantity=7, location="MAIN")
    name_cell = row(page, item["id"]).locator("td").nth(1)
    expect(name_cell).to_have_text(SCRIPT_NAME)
    # ...then rendered by the server on a fresh load.
    goto_live(page, f"/?q={tag}")
    expect(name_cell).to_have_text(SCRIPT_NAME)
    expect(page.locator("#rows script")).to_have_count(0)

    goto_live(page, f"/items/{item['id']}")
    panel = page.locator("#item-panel")
    expect(panel.locator("#item-title .item-name")).to_have_text(SCRIPT_NAME)
    expect(panel.locator("hgroup p")).to_have_text(IMG_DESCRIPTION)
    expect(panel.locator("script, img")).to_have_count(0)

    goto_live(page, f"/wall?location=MAIN&sku={tag}")
    tile = page.locator(f"article#tile-{item['id']}")
    expect(tile.locator(".tile-name")).to_have_text(SCRIPT_NAME)
    expect(tile.locator("script")).to_have_count(0)
    expect(tile).to_have_attribute("aria-label", re.compile(re.escape(SCRIPT_NAME)))

    assert dialogs == [], f"a dialog opened: {dialogs}"


def test_the_pages_and_the_api_explorer_run_under_the_content_security_policy(
    logged_in: LoggedIn, api: Api, stack: Stack, tag: str
) -> None:
    """No inline script, no eval, no injected style: nothing the policy (app/http/security_headers.py)
    refuses, on every page and in the Swagger UI, while the forms still work."""
    item = api.create_item(f"{tag}-CSP", "Oat milk 1 l", quantity=5)
    manager = logged_in("manager", f"/?q={tag}")
    refused: list[str] = []
    manager.on("console", lambda message: refused.extend([message.text] if "Security Policy" in message.text else []))
    manager.on("pageerror", lambda error: refused.append(str(error)))

    open_details(manager.get_by_role("button", name="New item"))
    form = manager.locator("#create-form")
    form.get_by_label("SKU").fill(f"{tag}-NEW")
    form.get_by_label("Name").fill("Soy milk 1 l")
    form.get_by_role("button", name="Create item").click()
    expect(newest_badge(manager)).to_have_text("applied")
    # Accepted, the form is cleared (static/app.js, instead of an hx-on handler).
    expect(form.get_by_label("SKU")).to_have_value("")

    for path in (f"/items/{item['id']}", "/transfers", "/reservations", "/events", "/wall?location=MAIN"):
        goto_live(manager, path)
    manager.goto(f"{stack.command.url}/schema/swagger")
    expect(manager.locator(".opblock").first).to_be_visible()
    assert refused == [], refused
