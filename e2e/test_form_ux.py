"""The forms as a store manager needs them: each answer next to its form, what was typed kept
until the command is applied, a sticky location, a clear message when the command service is
down, "New item" at the top, search by several words, times in the viewer's zone, history pages,
a phone layout without sideways scrolling, a visible focus ring, and the focus kept on the row."""

from __future__ import annotations

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, Route, expect

from e2e.support.api import Api
from e2e.support.ui import LoggedIn, goto_live, newest_badge, open_details, row, row_available, tab_to
from tests.support.stack import Stack

UNREACHABLE = "The command service cannot be reached; nothing was sent. Try again."
PHONE = {"width": 390, "height": 844}


def _no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths}"


def test_a_rejected_reserve_keeps_its_input_and_its_answer_shows_next_to_the_form(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-FEW", "Espresso beans 1 kg", quantity=3)
    clerk = logged_in("clerk", f"/items/{item['id']}")
    form = clerk.locator("#reserve-form")
    form.get_by_label("Units").fill("9")
    form.get_by_label("Order or reference").fill("ORDER-77")
    form.get_by_role("button", name="Reserve").click()

    # The answer is inside the form's own result slot, not at the top of the page.
    answer = form.locator("#reserve-result p.badge")
    expect(answer.locator("strong.state")).to_have_text(re.compile(r"^rejected: insufficient_stock"))
    expect(answer).to_contain_text(f"Reserve 9 · {tag}-FEW Espresso beans 1 kg")
    expect(clerk.locator("#outcomes p.badge")).to_have_count(0)
    # Rejected: what was typed stays, to correct and send again.
    expect(form.get_by_label("Units")).to_have_value("9")
    expect(form.get_by_label("Order or reference")).to_have_value("ORDER-77")

    form.get_by_label("Units").fill("2")
    form.get_by_role("button", name="Reserve").click()
    expect(answer.locator("strong.state")).to_have_text("applied")
    # Applied: the form is cleared for the next one.
    expect(form.get_by_label("Order or reference")).to_have_value("")
    expect(form.get_by_label("Units")).to_have_value("1")
    assert api.item(item["id"])["reserved"] == 2


def test_a_row_answer_stays_next_to_its_row_through_the_live_update(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-ROW", "Rolled oats 500 g", quantity=10)
    clerk = logged_in("clerk", f"/?q={tag}")
    stock_row = row(clerk, item["id"])
    open_details(stock_row.get_by_role("button", name="Stock"))
    # Which item the form changes is in sight next to it.
    expect(stock_row.locator(".stock-form .form-item")).to_have_text(f"{tag}-ROW Rolled oats 500 g")
    stock_row.get_by_label("Quantity").fill("3")
    stock_row.get_by_role("button", name="Reserve").click()
    expect(row_available(clerk, item["id"])).to_have_text(re.compile(r"^7\b"))  # the row was re-rendered
    expect(stock_row.locator(".form-result strong.state")).to_have_text("applied")
    expect(clerk.locator("#outcomes p.badge")).to_have_count(0)


def _answer_late(page: Page, command: str) -> None:
    """Hold the command service's answers to a command until the command's outcome has had time
    to arrive over the live stream first (a slow network between the page and the service)."""

    def late(route: Route) -> None:
        answer = route.fetch()
        time.sleep(2)
        route.fulfill(response=answer)

    page.route(f"**/ui/items/*/{command}", late)


def test_answers_that_come_after_the_outcome_and_the_row_update_still_show_next_to_the_form(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-LATE", "Rolled oats 500 g", quantity=3)
    clerk = logged_in("clerk", f"/items/{item['id']}")
    _answer_late(clerk, "reserve")
    form = clerk.locator("#reserve-form")
    form.get_by_label("Units").fill("9")
    form.get_by_role("button", name="Reserve").click()
    # The outcome came before its pending badge: the badge asks for it and shows it in place.
    expect(form.locator("#reserve-result strong.state")).to_have_text(re.compile(r"^rejected: insufficient_stock"))
    expect(form.get_by_label("Units")).to_have_value("9")

    # On the dashboard the row is re-rendered before the answer arrives: the answer goes to the
    # row's new form, which is cleared once the command is applied.
    goto_live(clerk, f"/?q={tag}")
    stock_row = row(clerk, item["id"])
    open_details(stock_row.get_by_role("button", name="Stock"))
    stock_row.get_by_label("Quantity").fill("2")
    stock_row.get_by_role("button", name="Reserve").click()
    expect(row_available(clerk, item["id"])).to_have_text(re.compile(r"^1\b"))
    expect(clerk.locator(f"#stock-{item['id']}-result strong.state")).to_have_text("applied")
    expect(stock_row.get_by_label("Quantity")).to_have_value("1")


def test_the_location_choice_is_sticky_across_live_updates_and_page_loads(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-LOC", "Tote bag, green", quantity=5, location="MAIN")
    assert api.move(item["id"], "adjust", 4, location="S001").status_code == 200
    clerk = logged_in("clerk", f"/?q={tag}")
    stock_row = row(clerk, item["id"])
    open_details(stock_row.get_by_role("button", name="Stock"))
    stock_row.get_by_label("Location").select_option("S001")
    stock_row.get_by_label("Quantity").fill("1")
    stock_row.get_by_role("button", name="Reserve").click()
    expect(stock_row.locator(".form-result strong.state")).to_have_text("applied")
    assert api.item(item["id"])["reserved"] == 1
    expect(stock_row.locator(".version")).to_have_text(str(api.item(item["id"])["version"]))
    # After the live re-render, and with the form closed and opened again, it is still S001.
    stock_row.get_by_role("button", name="Stock").click()
    open_details(stock_row.get_by_role("button", name="Stock"))
    expect(stock_row.get_by_label("Location")).to_have_value("S001")
    stock_row.get_by_role("button", name="Reserve").click()
    expect(stock_row.locator('td[data-label="Reserved"]')).to_have_text("2")
    levels = {level["location"]: level["reserved"] for level in api.item(item["id"])["locations"]}
    assert levels.get("S001") == 2 and levels.get("MAIN", 0) == 0, levels

    # On the next page load, and on another page's forms, too.
    goto_live(clerk, f"/?q={tag}")
    open_details(row(clerk, item["id"]).get_by_role("button", name="Stock"))
    expect(row(clerk, item["id"]).get_by_label("Location")).to_have_value("S001")
    goto_live(clerk, f"/items/{item['id']}")
    expect(clerk.locator("#reserve-form").get_by_label("Location")).to_have_value("S001")


def test_a_clear_message_when_the_command_service_cannot_be_reached(
    logged_in: LoggedIn, api: Api, stack: Stack, tag: str
) -> None:
    item = api.create_item(f"{tag}-DOWN", "Oat milk 1 l", quantity=5)
    clerk = logged_in("clerk", f"/items/{item['id']}")
    form = clerk.locator("#reserve-form")
    form.get_by_label("Units").fill("2")
    form.get_by_label("Order or reference").fill("ORDER-DOWN")
    stack.command.stop()
    try:
        form.get_by_role("button", name="Reserve").click()
        expect(form.locator("#reserve-result")).to_have_text(UNREACHABLE)
        expect(form.get_by_label("Order or reference")).to_have_value("ORDER-DOWN")
    finally:
        stack.command.start()
    assert api.item(item["id"])["reserved"] == 0
    # Back up (a first command through the restarted service, so its producer is connected), the
    # same form sends what it kept.
    assert api.move(item["id"], "reserve", 1).status_code == 200
    form.get_by_role("button", name="Reserve").click()
    expect(form.locator("#reserve-result strong.state")).to_have_text("applied")


def test_a_proxy_saying_the_command_service_is_unavailable_shows_when_to_try_again(
    logged_in: LoggedIn, api: Api, stack: Stack, tag: str
) -> None:
    item = api.create_item(f"{tag}-PROXY", "Oat milk 1 l", quantity=5)
    clerk = logged_in("clerk", f"/items/{item['id']}")
    cors = {
        "Access-Control-Allow-Origin": stack.query.url,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": "retry-after",
        "Retry-After": "30",
    }
    clerk.route(
        "**/ui/items/*/reserve",
        lambda route: route.fulfill(status=503, headers=cors, body="<html><h1>503 Service Unavailable</h1></html>"),
    )
    form = clerk.locator("#reserve-form")
    form.get_by_label("Order or reference").fill("ORDER-PROXY")
    form.get_by_role("button", name="Reserve").click()
    expect(form.locator("#reserve-result")).to_have_text(
        "The command service cannot be reached; nothing was sent. Try again (in 30 s)."
    )
    expect(form.get_by_label("Order or reference")).to_have_value("ORDER-PROXY")
    expect(clerk.locator("h1", has_text="503")).to_have_count(0)


def test_new_item_is_at_the_top_of_a_full_dashboard(logged_in: LoggedIn, api: Api, tag: str) -> None:
    for n in range(26):
        api.create_item(f"{tag}-N{n:02d}", f"Item {n}", quantity=1)
    manager = logged_in("manager", f"/?q={tag}", viewport={"width": 1920, "height": 1080})
    expect(manager.locator("#rows tr")).to_have_count(25)
    new_item = manager.get_by_role("button", name="New item")
    expect(new_item).to_be_in_viewport()
    box = new_item.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 1080, box
    assert manager.evaluate("() => window.scrollY") == 0
    open_details(new_item)
    expect(manager.locator("#create-form").get_by_label("SKU")).to_be_in_viewport()


def test_a_search_by_several_words_on_the_page_and_live(logged_in: LoggedIn, api: Api, tag: str) -> None:
    tote = api.create_item(f"{tag}-TOTE", "Canvas bag, green", quantity=1)
    api.create_item(f"{tag}-MUG", "Green mug", quantity=1)
    viewer = logged_in("viewer", "/")
    viewer.get_by_label("Search SKU or name").fill(f"green {tag.lower()} tote")
    viewer.get_by_role("button", name="Show").click()
    expect(viewer.locator("#conn")).to_have_text("Live")
    expect(viewer.locator("#rows tr")).to_have_count(1)
    expect(row(viewer, tote["id"])).to_have_count(1)

    # The live list follows the same rule: a new match is added, a non-match is not.
    api.create_item(f"{tag}-OTHER", "Blue tote", quantity=1)
    later = api.create_item(f"{tag}-BAG", "Tote, green", quantity=1)
    expect(row(viewer, later["id"])).to_have_count(1)
    expect(viewer.locator("#rows tr")).to_have_count(2)


def test_times_show_in_the_viewers_time_zone(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-TZ", "Sand timer", quantity=1)
    page = logged_in("viewer", f"/items/{item['id']}", timezone_id="America/New_York")
    when = page.locator("#item-history tbody time").first
    utc = datetime.fromisoformat(str(when.get_attribute("datetime")).replace("Z", "+00:00"))
    local = utc.astimezone(ZoneInfo("America/New_York"))
    zone = local.tzname()
    assert zone in ("EST", "EDT")
    expect(when).to_contain_text(f"{local:%I:%M:%S}".lstrip("0"))
    expect(when).to_contain_text(zone)
    expect(when).to_have_attribute("title", f"{utc:%Y-%m-%d %H:%M:%S} UTC")


def test_the_history_pages_older_and_newer_and_an_older_page_stays_put(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-HIST", "Paper cups", quantity=100)
    for _ in range(31):
        assert api.move(item["id"], "adjust", -1).status_code == 200
    page = logged_in("viewer", f"/items/{item['id']}")
    history = page.locator("#item-history tbody tr")
    expect(history).to_have_count(30)
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)

    page.get_by_role("link", name="Older →").click()
    expect(page.locator("#conn")).to_have_text("Live")
    older = page.locator("#item-history-page tbody tr")
    expect(older).to_have_count(2)  # the two oldest: the first adjustment and the create
    expect(older.last).to_contain_text("Create")
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)

    # A change meanwhile: the older page stays as it is, the panel still follows.
    assert api.move(item["id"], "adjust", -1).status_code == 200
    expect(page.locator("#item-panel .totals article", has_text="On hand").locator(".big")).to_have_text("68")
    expect(older).to_have_count(2)

    # The page just newer than the oldest one was made before that change: it is still an older
    # page (the newest entry is not on it), and one more step leads to the newest.
    page.get_by_role("link", name="← Newer").click()
    expect(older).to_have_count(30)
    page.get_by_role("link", name="← Newer").click()
    expect(history).to_have_count(30)
    expect(page.get_by_role("link", name="← Newer")).to_have_count(0)
    expect(history.first.locator("td.num").first).to_have_text("-1")


def test_no_sideways_scrolling_on_a_phone_and_the_item_stays_in_sight(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-PHONE-WITH-A-RATHER-LONG-SKU", "Thermos flask, stainless, 750 ml", quantity=9)
    assert api.command(item["id"], "ship", {"quantity": 2, "from_location": "MAIN", "to_location": "S002"}).is_success
    assert api.command(item["id"], "reserve", {"quantity": 1, "reference": "ORDER-PHONE"}).is_success
    page = logged_in("clerk", f"/?q={tag}", viewport=PHONE)
    _no_sideways_scroll(page)
    table = page.locator(".table-wrap").first
    assert table.evaluate("box => box.scrollWidth <= box.clientWidth"), "the item list scrolls inside its box"
    stock_row = row(page, item["id"])
    open_details(stock_row.get_by_role("button", name="Stock"))
    expect(stock_row.locator(".stock-form .form-item")).to_be_in_viewport()
    expect(stock_row.locator(".stock-form .form-item")).to_contain_text("Thermos flask")
    _no_sideways_scroll(page)
    for path in (f"/items/{item['id']}", f"/transfers?item_id={item['id']}", f"/reservations?item_id={item['id']}"):
        goto_live(page, path)
        _no_sideways_scroll(page)


def test_the_focus_ring_is_visible_and_the_focus_stays_on_the_row_after_a_submit(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-FOCUS", "Rye bread", quantity=10)
    clerk = logged_in("clerk", f"/?q={tag}")
    stock_row = row(clerk, item["id"])
    summary = stock_row.get_by_role("button", name="Stock")
    tab_to(clerk, summary)
    ring = summary.evaluate("el => { const s = getComputedStyle(el); return [s.outlineStyle, s.outlineWidth]; }")
    assert ring == ["solid", "3px"], ring

    clerk.keyboard.press("Enter")
    clerk.keyboard.press("Tab")
    quantity = stock_row.get_by_label("Quantity")
    expect(quantity).to_be_focused()
    clerk.keyboard.press("ControlOrMeta+a")
    clerk.keyboard.type("2")
    clerk.keyboard.press("Enter")
    expect(newest_badge(clerk)).to_have_text("applied")
    expect(row_available(clerk, item["id"])).to_have_text(re.compile(r"^8\b"))  # the row was re-rendered live
    expect(stock_row.get_by_label("Quantity")).to_be_focused()
