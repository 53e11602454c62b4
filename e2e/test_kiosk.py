"""A wall link on a TV: it opens the wall with nobody logged in, survives restarts of the service
that serves it without a reload, and ends with a clear message within seconds of being revoked."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import BrowserContext, expect

from e2e.support.ui import LIVE, RECONNECTING, mark_document, same_document
from tests.support.stack import Stack

REVOKED = "This wall link was revoked. Ask an admin for a new link."


def _make_link(stack: Stack, name: str, locations: list[str]) -> dict[str, Any]:
    made = httpx.post(
        f"{stack.query.url}/api/v1/kiosk-links",
        json={"name": name, "locations": locations},
        headers=stack.token("admin"),
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_a_wall_link_survives_two_restarts_and_ends_when_revoked(
    new_context: Callable[..., BrowserContext], stack: Stack, tag: str, artifacts: Path
) -> None:
    link = _make_link(stack, f"{tag} TV", ["S001", "S002"])
    tv = new_context(viewport={"width": 1920, "height": 1080}).new_page()
    tv.goto(link["url"])
    expect(tv).to_have_url(re.compile(r"/wall\?location=S001,S002$"))
    conn = tv.locator("#conn")
    expect(conn).to_have_text(LIVE)
    mark_document(tv)

    for _ in range(2):
        stack.query.stop()
        try:
            expect(conn).to_have_text(RECONNECTING)
        finally:
            stack.query.start()
        # The link's cookie is all the wall needs: the restarted service lets it back in.
        expect(conn).to_have_text(LIVE, timeout=60_000)
    assert same_document(tv)
    expect(tv.locator("#session-ended")).to_be_hidden()

    revoked = httpx.delete(
        f"{stack.query.url}/api/v1/kiosk-links/{link['id']}", headers=stack.token("admin"), timeout=30
    )
    assert revoked.status_code == 200, revoked.text

    ended = tv.locator("#session-ended")
    expect(ended).to_be_visible(timeout=5_000)
    expect(ended).to_have_text(REVOKED)
    tv.screenshot(path=str(artifacts / "kiosk-revoked.png"))
    # It stays on the message: no login page, no reconnecting.
    expect(conn).to_have_text("Ended")
    assert same_document(tv) and "/wall" in tv.url


def test_a_revoked_link_opened_again_shows_why(
    new_context: Callable[..., BrowserContext], stack: Stack, tag: str, artifacts: Path
) -> None:
    link = _make_link(stack, f"{tag} spare TV", ["MAIN"])
    httpx.delete(f"{stack.query.url}/api/v1/kiosk-links/{link['id']}", headers=stack.token("admin"), timeout=30)
    page = new_context(viewport={"width": 390, "height": 844}).new_page()
    answer = page.goto(link["url"])
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_have_text(REVOKED)
    assert not [c for c in page.context.cookies() if c["name"] == "inventory_kiosk"]
    page.screenshot(path=str(artifacts / "kiosk-refused-phone.png"))
