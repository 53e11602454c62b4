"""Webhooks: an admin registers an endpoint on the Webhooks page, copies its secret (shown once),
pauses, resumes and removes it; a private address is refused next to the form; the page is for
admins only."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from e2e.support.axe import blocking
from e2e.support.ui import LoggedIn, open_details


def register(admin: Page, url: str, *, secret: str = "", only: tuple[str, ...] = ()) -> None:
    admin.goto("/webhooks")
    open_details(admin.get_by_role("button", name="Register an endpoint"))
    form = admin.locator("#add-webhook-form")
    form.get_by_label("URL").fill(url)
    if only:
        for box in form.locator("input[name=events]").all():
            if box.get_attribute("value") not in only:
                box.uncheck()
    if secret:
        form.get_by_label("Secret").fill(secret)
    form.get_by_role("button", name="Register endpoint").click()


def test_an_admin_registers_pauses_resumes_and_removes_an_endpoint(logged_in: LoggedIn, tag: str) -> None:
    admin = logged_in("admin")
    # A name that does not resolve yet is accepted: each delivery resolves and checks it again.
    url = f"https://{tag.lower()}.receiver.invalid/hook"
    register(admin, url, only=("stock.low", "stock.out"))
    created = admin.locator(".webhook-created")
    expect(created).to_contain_text("not shown again")
    secret = admin.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_") and len(secret) > 30
    row = admin.locator("#webhook-rows tr", has_text=url)
    expect(row).to_contain_text("stock.low, stock.out")
    expect(row.locator(".webhook-state")).to_have_text("active")

    # The secret is not on the page any more once it is left.
    admin.goto("/webhooks")
    expect(admin.locator(".webhook-created")).to_have_count(0)
    assert secret not in admin.content()

    row.get_by_role("button", name=f"Pause {url}").click()
    expect(admin.locator("h1")).to_have_text(url)  # the endpoint's own page
    expect(admin.locator(".webhook-row .webhook-state")).to_have_text("paused")
    expect(admin.locator(".webhook-row")).to_contain_text("paused by an admin")
    expect(admin.locator("#dead-rows")).to_contain_text("None.")
    admin.get_by_role("button", name=f"Resume {url}").click()
    expect(admin.locator(".webhook-row .webhook-state")).to_have_text("active")
    admin.get_by_role("button", name=f"Remove {url}").click()
    expect(admin).to_have_url(re.compile(r"/webhooks$"))
    expect(admin.locator("#webhook-rows tr", has_text=url)).to_have_count(0)


def test_a_private_address_is_refused_next_to_the_form(logged_in: LoggedIn) -> None:
    admin = logged_in("admin")
    register(admin, "http://169.254.169.254/latest/meta-data")
    expect(admin.locator("#webhook-error")).to_contain_text("only public addresses")
    expect(admin.get_by_label("URL")).to_have_value("http://169.254.169.254/latest/meta-data")
    expect(admin.locator("#webhook-rows")).not_to_contain_text("169.254.169.254")


def test_the_page_is_for_admins(logged_in: LoggedIn) -> None:
    manager = logged_in("manager")
    expect(manager.get_by_role("link", name="Webhooks")).to_have_count(0)
    response = manager.goto("/webhooks")
    assert response is not None and response.status == 403


@pytest.mark.parametrize(
    "viewport", [{"width": 1920, "height": 1080}, {"width": 390, "height": 844}], ids=["desktop", "phone"]
)
def test_the_webhooks_pages_have_no_serious_accessibility_violation(
    logged_in: LoggedIn, tag: str, viewport: dict[str, int]
) -> None:
    admin = logged_in("admin", "/", viewport=viewport)
    url = f"https://{tag.lower()}-a11y.receiver.invalid/hook"
    register(admin, url)
    found = {"/webhooks (registered)": blocking(admin)}
    admin.goto("/webhooks")
    found["/webhooks"] = blocking(admin)
    admin.locator("#webhook-rows a", has_text=url).click()
    expect(admin.locator("h1")).to_have_text(url)
    found["endpoint page"] = blocking(admin)
    problems = {page: lines for page, lines in found.items() if lines}
    assert not problems, problems
