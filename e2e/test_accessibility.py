"""Every page passes axe-core's checks (e2e/support/axe.py) with no serious or critical
violation, at a desktop size and at a phone size, with data on it: an item that is low, one that
is out, a transfer in transit and an open reservation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from e2e.support.api import Api
from e2e.support.axe import blocking
from e2e.support.ui import LoggedIn

DESKTOP = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
STORE = "S001"
# Pages every signed-in admin can open, by path; "{item}" is an item of the test's own.
PAGES = [
    "/",
    f"/?location={STORE}",
    "/items/{item}",
    "/transfers",
    "/reservations",
    "/events",
    "/low-stock",
    "/people",
    "/kiosk-links",
    f"/wall?location={STORE}",
]


@pytest.fixture(scope="module")
def shelf(api: Api) -> Iterator[str]:
    """Items in every state the pages colour differently; the id of the one with records."""
    low = api.create_item("A11Y-LOW", "Accessible low item", quantity=2, location=STORE)
    api.create_item("A11Y-OUT", "Accessible out item", quantity=0, location=STORE)
    busy = api.create_item("A11Y-BUSY", "Accessible busy item", quantity=40, location=STORE)
    assert api.move(busy["id"], "reserve", 3, location=STORE).status_code == 200
    shipped = api.command(busy["id"], "ship", {"quantity": 4, "from_location": STORE, "to_location": "MAIN"})
    assert shipped.status_code == 200, shipped.text
    assert low["id"]
    yield busy["id"]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_has_no_serious_accessibility_violation(
    logged_in: LoggedIn, shelf: str, viewport: dict[str, int]
) -> None:
    page: Page = logged_in("admin", "/", viewport=viewport)
    found: dict[str, list[str]] = {}
    for template in PAGES:
        path = template.format(item=shelf)
        response = page.goto(path)
        assert response is not None and response.ok, f"{path}: {response.status if response else 'no answer'}"
        if page.locator("#conn").count():  # a live page: checked once its stream is open
            expect(page.locator("#conn"), f"{path} is not live").to_have_text("Live")
        problems = blocking(page)
        if problems:
            found[path] = problems
    assert not found, "\n".join(f"{path}:\n  " + "\n  ".join(lines) for path, lines in found.items())


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_login_page_has_no_serious_accessibility_violation(page: Page, viewport: dict[str, int]) -> None:
    page.set_viewport_size(viewport)
    page.goto("/login")
    assert blocking(page) == []
