"""People: an admin adds a store-limited manager on the People page; that manager's pages open on
its store, its forms offer only its store, and a command at another store from the page is
refused with the reason next to the form, nothing changed."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from e2e.support.api import Api
from e2e.support.ui import LoggedIn, open_details
from tests.support.app import PASSWORD


def add_person(admin: Page, username: str, role: str, locations: str, *, status: int = 200) -> None:
    admin.goto("/people")
    open_details(admin.get_by_role("button", name="Add a person"))
    form = admin.locator("#add-person-form")
    form.get_by_label("Username").fill(username)
    form.get_by_label("Role").select_option(role)
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_label("Locations").fill(locations)
    with admin.expect_response(lambda r: r.url.endswith("/ui/people") and r.request.method == "POST") as answer:
        form.get_by_role("button", name="Add person").click()
    assert answer.value.status == status


def test_a_store_limited_manager_added_on_the_people_page_works_only_at_its_store(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    username = f"mgr-{tag.lower()}"
    admin = logged_in("admin")
    add_person(admin, username, "manager", "s001")
    result = admin.locator("#people-add-result")
    expect(result).to_contain_text(f"{username} can log in now")
    # The new row is in the table at once, with its store.
    new_row = admin.locator("#people-rows tr", has_text=username)
    expect(new_row).to_have_count(1)
    expect(new_row.get_by_text("S001", exact=True)).to_be_visible()
    # The same name again: refused next to the form, what was typed kept.
    add_person(admin, username, "manager", "S001", status=409)
    expect(result).to_contain_text("already exists")
    expect(admin.locator("#add-username")).to_have_value(username)

    item = api.create_item(f"{tag}-MUG", "Mug", quantity=10, location="S001")
    stocked = api.command(
        item["id"], "adjust", {"quantity": 10, "reason": "received", "location": "S002"}, user="admin"
    )
    assert stocked.status_code == 200, stocked.text
    held = api.command(item["id"], "reserve", {"quantity": 2, "location": "S002"}, user="admin")
    assert held.status_code == 200, held.text

    manager = logged_in(username)
    # The dashboard opens on the manager's store; New item (the whole chain's catalogue) is not offered.
    expect(manager.locator("#items-title + p")).to_contain_text("at S001")
    expect(manager.get_by_role("button", name="New item")).to_have_count(0)

    # The item page's forms offer its store only (the transfer may still go anywhere).
    manager.goto(f"/items/{item['id']}")
    for select in ("#count-location", "#reserve-location", "#adjust-location", "#move-from_location"):
        expect(manager.locator(f"{select} option")).to_have_text(["S001"])
    expect(manager.locator("#move-to_location option")).to_have_count(3)

    # A reservation at S002 shows on the reservations page; committing it from there is refused.
    manager.goto(f"/reservations?location=S002&item_id={item['id']}")
    reservation = manager.locator("tr.reservation", has_text="S002")
    expect(reservation).to_have_count(1)
    with manager.expect_response(lambda r: "/commit-reservation" in r.url) as answer:
        reservation.get_by_role("button", name="Commit").click()
    assert answer.value.status == 403
    refusal = manager.get_by_role("alert").filter(has_text="you may not act at S002")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("location_not_allowed")

    after = api.item(item["id"])
    at = {level["location"]: (level["quantity"], level["reserved"]) for level in after["locations"]}
    assert at == {"S001": (10, 0), "S002": (10, 2)}
    assert after["version"] == 3


def test_an_admin_limits_disables_and_cannot_lock_itself_out(logged_in: LoggedIn, tag: str) -> None:
    username = f"clk-{tag.lower()}"
    admin = logged_in("admin")
    add_person(admin, username, "clerk", "")
    person = admin.locator("#people-rows tr", has_text=username)
    expect(person).to_contain_text("every location")
    open_details(person.get_by_role("button", name=f"Change {username}"))
    person.get_by_label("Locations").fill("S002, s001")
    person.get_by_role("button", name="Set locations").click()
    expect(person.locator(".form-result")).to_contain_text("may act at S001, S002")
    expect(person.locator("td").nth(1)).to_have_text("S001, S002")

    admin.once("dialog", lambda dialog: dialog.accept())
    person.get_by_role("button", name="Disable").click()
    expect(person.locator(".form-result")).to_contain_text("disabled")
    expect(person.get_by_role("button", name="Enable")).to_be_visible()
    expect(person).to_contain_text("disabled")

    # The admin is the only one with every location: disabling it is refused, next to the form.
    me = admin.locator("#people-rows tr", has_text=re.compile(r"^\s*admin\b"))
    open_details(me.get_by_role("button", name="Change admin"))
    admin.once("dialog", lambda dialog: dialog.accept())
    me.get_by_role("button", name="Disable").click()
    expect(me.locator(".form-result")).to_contain_text("last enabled admin")
    expect(me.get_by_role("button", name="Disable")).to_be_visible()
