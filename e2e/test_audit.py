"""The audit log (/events) in Chromium: filtered by a user it shows only that user's entries,
names items by SKU and name, takes that user's new entries live (and not anyone else's), and
its export link downloads the same entries as CSV."""

from __future__ import annotations

import csv
import io
import re

from playwright.sync_api import expect

from e2e.support.api import Api
from e2e.support.ui import LoggedIn, mark_document, same_document


def test_the_log_filtered_by_a_user_shows_only_theirs_live_and_exports_them(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    item = api.create_item(f"{tag}-AUD", "Paper cups, 100", quantity=30, location="MAIN")
    assert api.move(item["id"], "adjust", -2, location="MAIN", user="clerk").status_code == 200
    page = logged_in("admin", "/events")
    page.get_by_label("User").fill("clerk")
    page.get_by_label("Item").fill(f"{tag}-AUD")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#conn")).to_have_text("Live")
    rows = page.locator("#audit-rows tr.entry")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".actor")).to_have_text("clerk")
    expect(rows.first.locator(".item-cell")).to_contain_text(f"{tag}-AUD")
    expect(rows.first.locator(".item-cell")).to_contain_text("Paper cups, 100")
    expect(rows.first.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    mark_document(page)

    # The manager's change is not the clerk's: it does not arrive. The clerk's next one does, on top.
    assert api.move(item["id"], "adjust", 5, location="MAIN", user="manager").status_code == 200
    assert api.move(item["id"], "adjust", -3, location="MAIN", user="clerk").status_code == 200
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".change")).to_contain_text("-3")
    expect(page.locator("#audit-rows .actor")).to_have_text(["clerk", "clerk"])
    # A refusal of the clerk's is on the record too.
    assert api.move(item["id"], "adjust", -999, location="MAIN", user="clerk").status_code == 409
    expect(rows).to_have_count(3)
    expect(rows.first).to_have_class(re.compile(r"\brejected\b"))
    assert same_document(page)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export these entries as CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("audit-") and download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8") as exported:
        lines = list(csv.DictReader(io.StringIO(exported.read())))
    assert [(line["kind"], line["actor"], line["quantity_delta"]) for line in lines] == [
        ("rejected", "clerk", ""),
        ("applied", "clerk", "-3"),
        ("applied", "clerk", "-2"),
    ]
    assert {line["sku"] for line in lines} == {f"{tag}-AUD"}


def test_the_whole_log_names_items_and_has_no_clipped_numbers(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-NAMED", "Sugar sticks", quantity=3, location="S001")
    page = logged_in("viewer", "/events")
    entry = page.locator("#audit-rows tr.entry", has_text=f"{tag}-NAMED")
    expect(entry).to_have_count(1)
    expect(entry.locator(".item-cell a")).to_have_attribute("href", f"/items/{item['id']}")
    expect(entry).to_contain_text("Sugar sticks")
    expect(entry.locator(".what")).to_have_text("Create")
    # No short ids standing in for items, and no list numbers to clip ("100." shown as "00.").
    assert page.locator("#audit-rows ol, #audit-rows li").count() == 0
