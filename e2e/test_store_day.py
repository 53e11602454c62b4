"""A store's day from the item page: a shipment received short, a shelf count, a reservation that
expires; and every open page (walls, dashboard, lists) following along without a reload."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from e2e.support.api import Api
from e2e.support.ui import (
    LoggedIn,
    mark_document,
    newest_answer,
    newest_badge,
    row_available,
    same_document,
    tile_available,
)


def _total(page: Page, label: str) -> Locator:
    """One of the item page's totals (Available, On hand, Reserved, In transit)."""
    return page.locator("#item-panel .totals article", has_text=label).locator(".big")


def _history_with_reason(page: Page, reason: str) -> Locator:
    return page.locator(f'#item-history tbody tr:has(.reason[data-reason="{reason}"])')


def test_a_shipment_received_short_changes_both_walls_live_and_the_history_shows_transit_loss(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-SHIP", "Espresso cups, set of 4", quantity=30, location="MAIN")
    assert api.move(item["id"], "adjust", 5, location="S001").status_code == 200
    main_wall = logged_in("viewer", f"/wall?location=MAIN&sku={tag}")
    store_wall = logged_in("viewer", f"/wall?location=S001&sku={tag}")
    expect(tile_available(main_wall, item["id"])).to_have_text("30")
    expect(tile_available(store_wall, item["id"])).to_have_text("5")
    incoming = logged_in("viewer", "/transfers?location=S001&state=in_transit")
    dashboard = logged_in("viewer", f"/?q={tag}")
    expect(row_available(dashboard, item["id"])).to_have_text(re.compile(r"^35\b"))
    for page in (main_wall, store_wall, incoming, dashboard):
        mark_document(page)

    clerk = logged_in("clerk", f"/items/{item['id']}")
    mark_document(clerk)
    ship = clerk.locator("#move-form")
    ship.get_by_label("Units", exact=True).fill("10")
    ship.get_by_label("From").select_option("MAIN")
    ship.get_by_label("To").select_option("S001")
    ship.get_by_role("button", name="Ship").click()
    expect(newest_badge(clerk)).to_have_text("applied")

    # The units left MAIN and are on their way: MAIN's wall drops, S001's waits.
    expect(tile_available(main_wall, item["id"])).to_have_text("20")
    expect(_total(clerk, "In transit")).to_have_text("10")
    shipment = clerk.locator("#open-transfers tr.transfer")
    expect(shipment).to_have_count(1)
    expect(shipment).to_contain_text("MAIN → S001")
    expect(incoming.locator("#transfer-rows tr.transfer", has_text=f"{tag}-SHIP")).to_have_count(1)
    expect(tile_available(store_wall, item["id"])).to_have_text("5")
    # The chain has 10 fewer at hand while they travel.
    expect(row_available(dashboard, item["id"])).to_have_text(re.compile(r"^25\b"))

    # Eight of the ten arrive.
    shipment.get_by_label("Received").fill("8")
    shipment.get_by_role("button", name="Receive").click()
    expect(newest_badge(clerk)).to_have_text("applied")
    expect(tile_available(store_wall, item["id"])).to_have_text("13")
    expect(clerk.locator("#open-transfers tr.transfer")).to_have_count(0)
    expect(clerk.locator("#open-transfers")).to_contain_text("Nothing in transit.")
    expect(_total(clerk, "In transit")).to_have_text("0")
    # No longer in transit: gone from the store's list of what is on its way.
    expect(incoming.locator("#transfer-rows tr.transfer", has_text=f"{tag}-SHIP")).to_have_count(0)

    # The shortfall is on the record as a loss in transit, with what was shipped.
    loss = _history_with_reason(clerk, "transit_loss")
    expect(loss).to_have_count(1)
    expect(loss).to_contain_text("Receive")
    expect(loss).to_contain_text("Lost in transit")
    expect(loss).to_contain_text("received 8 of 10 shipped")
    expect(loss).to_contain_text("S001")
    expect(tile_available(main_wall, item["id"])).to_have_text("20")
    expect(row_available(dashboard, item["id"])).to_have_text(re.compile(r"^33\b"))
    assert api.item(item["id"])["in_transit"] == 0
    for page in (main_wall, store_wall, incoming, dashboard, clerk):
        assert same_document(page)


def test_a_count_from_the_item_page_is_recorded_with_reason_count_and_what_was_expected(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-COUNT", "Linen napkins", quantity=12, location="MAIN")
    clerk = logged_in("clerk", f"/items/{item['id']}")
    count = clerk.locator("#count-form")
    count.get_by_label("Counted").fill("9")
    count.get_by_label("Location").select_option("MAIN")
    count.get_by_label("Note").fill("Monday shelf count")
    count.get_by_role("button", name="Record count").click()
    expect(newest_badge(clerk)).to_have_text("applied")
    expect(newest_answer(clerk)).to_contain_text(f"Count 9 · {tag}-COUNT")

    expect(_total(clerk, "On hand")).to_have_text("9")
    counted = _history_with_reason(clerk, "count")
    expect(counted).to_have_count(1)
    expect(counted).to_contain_text("Count")
    expect(counted).to_contain_text("counted 9, expected 12 (-3)")
    expect(counted).to_contain_text("Monday shelf count")
    expect(counted.locator("td.num").first).to_have_text("-3")
    # Accepted, the form is cleared for the next count.
    expect(count.get_by_label("Counted")).to_have_value("")


def test_a_reservation_with_a_five_second_expiry_gives_its_units_back_on_the_dashboard_and_the_wall(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-HOLD", "Ceramic teapot", quantity=10, location="MAIN")
    wall = logged_in("viewer", f"/wall?location=MAIN&sku={tag}")
    dashboard = logged_in("viewer", f"/?q={tag}")
    expect(tile_available(wall, item["id"])).to_have_text("10")
    expect(row_available(dashboard, item["id"])).to_have_text(re.compile(r"^10\b"))
    mark_document(wall)
    mark_document(dashboard)

    clerk = logged_in("clerk", f"/items/{item['id']}")
    reserve = clerk.locator("#reserve-form")
    reserve.get_by_label("Units", exact=True).fill("4")
    reserve.get_by_label("Location").select_option("MAIN")
    reserve.get_by_label("Order or reference").fill(f"{tag}-ORDER")
    reserve.get_by_label("Expires in").fill("5")
    reserve.get_by_label("Time unit").select_option("seconds")
    reserve.get_by_role("button", name="Reserve").click()
    expect(newest_badge(clerk)).to_have_text("applied")

    # Held: every page shows the units gone from what is available...
    expect(tile_available(wall, item["id"])).to_have_text("6")
    expect(row_available(dashboard, item["id"])).to_have_text(re.compile(r"^6\b"))
    held = clerk.locator("#open-reservations tr.reservation")
    expect(held).to_have_count(1)
    expect(held).to_contain_text(f"{tag}-ORDER")
    expect(held.locator("time.countdown")).to_have_text(re.compile(r"^in \d s$"))

    # ...and when the reservation expires they come back, on every page, without a reload.
    expect(tile_available(wall, item["id"])).to_have_text("10")
    expect(row_available(dashboard, item["id"])).to_have_text(re.compile(r"^10\b"))
    expect(held).to_have_count(0)
    expect(_total(clerk, "Reserved")).to_have_text("0")
    expect(clerk.locator("#item-history tbody tr").first).to_contain_text("Expire")
    assert same_document(wall)
    assert same_document(dashboard)


def test_the_reservations_page_follows_new_reservations_live_and_commits_and_cancels_them(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-LIST", "Enamel mug", quantity=20, location="S002")
    wall = logged_in("viewer", f"/wall?location=S002&sku={tag}")
    held_on_wall = wall.locator(f"article#tile-{item['id']} .tile-detail")
    expect(held_on_wall).to_have_text("0 reserved")
    clerk = logged_in("clerk", f"/reservations?location=S002&state=open&reference={tag}-A")
    mark_document(clerk)
    mark_document(wall)
    rows = clerk.locator("#reservation-rows tr.reservation")
    expect(rows).to_have_count(0)

    # Made elsewhere (a till): the matching one appears, the other reference does not.
    for reference in (f"{tag}-A", f"{tag}-B"):
        answer = api.command(item["id"], "reserve", {"quantity": 3, "location": "S002", "reference": reference})
        assert answer.status_code == 200, answer.text
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text(f"{tag}-LIST")
    expect(rows).to_contain_text("no expiry")
    expect(held_on_wall).to_have_text("6 reserved")
    expect(tile_available(wall, item["id"])).to_have_text("14")

    rows.get_by_role("button", name="Commit").click()
    expect(newest_badge(clerk)).to_have_text("applied")
    # Sold: no longer open, so no longer on this page.
    expect(rows).to_have_count(0)
    # Sold from the shelf: still 14 available at the store, 3 fewer held.
    expect(held_on_wall).to_have_text("3 reserved")
    expect(tile_available(wall, item["id"])).to_have_text("14")
    assert api.item(item["id"])["quantity"] == 17

    every = logged_in("clerk", f"/reservations?item_id={item['id']}")
    expect(every.locator("#reservation-rows tr.reservation")).to_have_count(2)
    expect(every.locator("tr.reservation.committed .state-tag")).to_have_text("Sold")
    still_open = every.locator("tr.reservation.open")
    every.once("dialog", lambda dialog: dialog.accept())
    still_open.get_by_role("button", name="Cancel").click()
    expect(newest_badge(every)).to_have_text("applied")
    expect(every.locator("tr.reservation.cancelled .state-tag")).to_have_text("Cancelled")
    expect(tile_available(wall, item["id"])).to_have_text("17")
    expect(held_on_wall).to_have_text("0 reserved")
    assert api.item(item["id"])["reserved"] == 0
    assert same_document(clerk)
    assert same_document(wall)
