"""Page actions and locators shared by the browser tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import Locator, Page, expect

from tests.support.app import PASSWORD

# A live page is ready for pushed changes once its stream is open.
LIVE = "Live"
RECONNECTING = "Reconnecting…"

# The `logged_in` fixture: (user, next_path="/", **browser context options) -> a logged-in page.
LoggedIn = Callable[..., Page]


# Each form shows its answer next to itself (a .form-result slot); the tests want the newest answer
# on the page, wherever it is. This marks the newest badge added to the page (data-test-newest),
# on every document of the page; a badge moved elsewhere (its row left the list) stays marked.
NEWEST_BADGE_SCRIPT = """
(() => {
  let newest = null;
  new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      for (const node of mutation.addedNodes) {
        if (node.nodeType !== 1) continue;
        const badges = node.matches("p.badge") ? [node] : Array.from(node.querySelectorAll("p.badge"));
        for (const badge of badges) {
          if (badge.hasAttribute("data-test-seen")) continue;
          badge.setAttribute("data-test-seen", "");
          if (newest && newest !== badge) newest.removeAttribute("data-test-newest");
          badge.setAttribute("data-test-newest", "");
          newest = badge;
        }
      }
    }
  }).observe(document, {childList: true, subtree: true});
})();
"""


def log_in(page: Page, user: str, next_path: str = "/") -> None:
    """Log in through the login form; ends on next_path with its live stream open."""
    page.add_init_script(NEWEST_BADGE_SCRIPT)
    page.goto(f"/login?{urlencode({'next': next_path})}")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#conn")).to_have_text(LIVE)


def goto_live(page: Page, path: str) -> None:
    """Open a page and wait until its live stream is connected."""
    page.goto(path)
    expect(page.locator("#conn")).to_have_text(LIVE)


def open_details(summary: Locator) -> None:
    """Open a <details> by its <summary> unless it is open already."""
    if not summary.evaluate("summary => summary.parentElement.open"):
        summary.click()
    expect(summary.locator("xpath=..")).to_have_attribute("open", "")


def row(page: Page, item_id: str) -> Locator:
    return page.locator(f"tr#row-{item_id}")


def row_available(page: Page, item_id: str) -> Locator:
    return row(page, item_id).locator("td.available")


def tile_available(page: Page, item_id: str) -> Locator:
    return page.locator(f"article#tile-{item_id} .tile-available")


def newest_answer(page: Page) -> Locator:
    """The newest command badge on the page, next to whichever form it answers (see log_in)."""
    return page.locator("p.badge[data-test-newest]")


def newest_badge(page: Page) -> Locator:
    """The state of the newest command badge."""
    return newest_answer(page).locator("strong.state")


def record_badge_states(page: Page) -> None:
    """Record every state text the newest badge shows, in order (see badge_states)."""
    page.evaluate(
        """() => {
          window.__badgeStates = [];
          const note = () => document.querySelectorAll("p.badge[data-test-newest] strong.state").forEach((state) => {
            const text = state.textContent.trim();
            const seen = window.__badgeStates;
            if (seen[seen.length - 1] !== text) seen.push(text);
          });
          new MutationObserver(note).observe(document.body, {childList: true, subtree: true, characterData: true});
        }"""
    )


def badge_states(page: Page) -> list[str]:
    return list(page.evaluate("() => window.__badgeStates"))


def csrf_token(page: Page) -> str:
    """The page's CSRF token, as htmx sends it (hx-headers on <body>)."""
    headers: dict[str, Any] = json.loads(page.locator("body").get_attribute("hx-headers") or "{}")
    return str(headers["X-CSRFToken"])


def is_focused(locator: Locator) -> bool:
    return bool(locator.evaluate("element => element === document.activeElement"))


def tab_to(page: Page, target: Locator, max_presses: int = 40) -> None:
    """Press Tab until target has the focus, as someone without a mouse would."""
    for _ in range(max_presses):
        if is_focused(target):
            return
        page.keyboard.press("Tab")
    expect(target).to_be_focused()


def mark_document(page: Page) -> None:
    """Mark the current document, to prove later that the page was never reloaded."""
    page.evaluate("() => { window.__sameDocument = true; }")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("() => window.__sameDocument === true"))


def post_from_page(page: Page, url: str, form: dict[str, str], headers: dict[str, str]) -> int:
    """POST a form with fetch() from the page itself, with its cookies (as a forged request
    from a tampered page would); the status as the page's script sees it."""
    status = page.evaluate(
        """async ([url, form, headers]) => {
          const response = await fetch(url, {
            method: "POST", credentials: "include", headers, body: new URLSearchParams(form),
          });
          return response.status;
        }""",
        [url, form, headers],
    )
    return int(status)
