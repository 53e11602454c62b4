"""Sessions that end cleanly: a page whose session expires goes to the login page and back to
where it was; a page whose session was renewed meanwhile reconnects by itself."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from app.auth.tokens import Principal, TokenService
from e2e.support.api import Api
from e2e.support.ui import LIVE, mark_document, row_available, same_document
from tests.support.app import PASSWORD
from tests.support.stack import Stack

SHORT_TTL = 6  # seconds: long enough to load the page before half of it (no renewal), short enough to wait for


def _principal(stack: Stack, user: str) -> Principal:
    """The user as a login makes it (role, epoch, locations), read from a token of the API's."""
    token = stack.token(user)["Authorization"].removeprefix("Bearer ")
    return TokenService(stack.env["INVENTORY_JWT_SECRET"], 60).verify(token)


def _session(stack: Stack, user: str, ttl: int) -> str:
    """A session cookie as the login form would set it, lasting ``ttl`` seconds."""
    return TokenService(stack.env["INVENTORY_JWT_SECRET"], ttl).issue(_principal(stack, user)).token


def _page_with_session(new_context: Callable[..., BrowserContext], stack: Stack, token: str) -> Page:
    context = new_context()
    context.add_cookies([{"name": "inventory_session", "value": token, "url": stack.query.url}])
    return context.new_page()


def test_an_expired_session_goes_to_login_and_comes_back(
    new_context: Callable[..., BrowserContext], stack: Stack, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-EXP", "Rye crackers", quantity=4)
    page = _page_with_session(new_context, stack, _session(stack, "viewer", SHORT_TTL))
    where = f"/?q={tag}"
    page.goto(where)
    expect(page.locator("#conn")).to_have_text(LIVE)

    # The stream ends when the session expires; the page goes to log in, remembering where it was.
    expect(page).to_have_url(re.compile(r"/login\?next=%2F%3Fq%3D" + tag + "$"), timeout=30_000)
    page.get_by_label("Username").fill("viewer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(re.compile(re.escape(where) + "$"))
    expect(page.locator("#conn")).to_have_text(LIVE)
    expect(row_available(page, item["id"])).to_have_text(re.compile(r"^4\b"))


def test_a_session_renewed_meanwhile_reconnects_the_page(
    new_context: Callable[..., BrowserContext], stack: Stack, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-REN", "Oat flakes", quantity=9)
    page = _page_with_session(new_context, stack, _session(stack, "clerk", SHORT_TTL))
    page.goto(f"/?q={tag}")
    conn = page.locator("#conn")
    expect(conn).to_have_text(LIVE)
    mark_document(page)
    # Meanwhile the session was renewed (another tab was active): the browser holds a new cookie,
    # while this page's stream still runs on the old one.
    page.context.add_cookies(
        [{"name": "inventory_session", "value": _session(stack, "clerk", 3600), "url": stack.query.url}]
    )

    # The old session expires, the stream ends, the page asks and reconnects instead of leaving.
    with page.expect_response(lambda r: r.url.endswith("/ui/session"), timeout=30_000) as asked:
        pass
    assert asked.value.status == 200
    expect(conn).to_have_text(LIVE)
    assert api.move(item["id"], "reserve", 2).status_code == 200
    expect(row_available(page, item["id"])).to_have_text(re.compile(r"^7\b"))
    assert same_document(page) and page.url.endswith(f"/?q={tag}")
