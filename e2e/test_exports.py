"""CSV exports from the pages in Chromium: the dashboard's count sheet of one store (with the
list's search), an item's whole history, and the transfers page's export with its filters. Each
link downloads a named attachment that a spreadsheet reads as UTF-8 (byte order mark)."""

from __future__ import annotations

import csv
import io

from playwright.sync_api import Download, Page

from e2e.support.api import Api
from e2e.support.ui import LoggedIn

BOM = "\ufeff"


def download(page: Page, link: str) -> tuple[Download, list[dict[str, str]]]:
    with page.expect_download() as info:
        page.get_by_role("link", name=link).click()
    found = info.value
    with open(found.path(), encoding="utf-8", newline="") as file:
        text = file.read()
    assert text.startswith(BOM) and "\r\n" in text
    return found, list(csv.DictReader(io.StringIO(text[len(BOM) :], newline="")))


def test_the_dashboard_exports_a_count_sheet_of_the_store_and_search_shown(
    logged_in: LoggedIn, api: Api, tag: str
) -> None:
    mugs = api.create_item(f"{tag}-MUG", "Mug, blue", quantity=6, location="S001")
    api.create_item(f"{tag}-TEE", "=SUM(A1:A2)", quantity=2, location="S001")
    api.create_item(f"{tag}-CAP", "Cap", quantity=9, location="S002")
    page = logged_in("manager", "/")
    search = page.get_by_role("search")
    search.get_by_label("Search SKU or name").fill(tag)
    search.get_by_label("Location").select_option("S001")
    search.get_by_role("button", name="Show").click()
    page.wait_for_url("**location=S001**")

    sheet, rows = download(page, "Count sheet")
    assert sheet.suggested_filename.startswith("count-sheet-S001-") and sheet.suggested_filename.endswith(".csv")
    assert list(rows[0]) == ["sku", "name", "location", "expected", "counted"]
    assert [(r["sku"], r["name"], r["location"], r["expected"], r["counted"]) for r in rows] == [
        (f"{tag}-MUG", "Mug, blue", "S001", "6", ""),
        (f"{tag}-TEE", "'=SUM(A1:A2)", "S001", "2", ""),
    ]

    wide, rows = download(page, "One row per item, a column per location")
    assert wide.suggested_filename.startswith("items-wide-S001-")
    assert [(r["sku"], r["S001"], r["quantity"]) for r in rows] == [(f"{tag}-MUG", "6", "6"), (f"{tag}-TEE", "2", "2")]

    assert api.move(mugs["id"], "adjust", -1, location="S001", user="clerk").status_code == 200
    page.goto(f"/items/{mugs['id']}")
    history, rows = download(page, "Whole history")
    assert history.suggested_filename.startswith(f"history-{tag}-MUG-")
    newest = rows[0]
    assert (newest["quantity_delta"], newest["location"], newest["actor"]) == ("-1", "S001", "clerk")
    assert len(rows) == 2


def test_the_transfers_page_exports_what_its_filters_show(logged_in: LoggedIn, api: Api, tag: str) -> None:
    item = api.create_item(f"{tag}-SHIP", "Boxes", quantity=10, location="MAIN")
    shipped = api.command(item["id"], "ship", {"quantity": 3, "from_location": "MAIN", "to_location": "S002"})
    assert shipped.status_code == 200, shipped.text
    page = logged_in("manager", f"/transfers?item_id={item['id']}")
    page.get_by_label("State").select_option("in_transit")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**state=in_transit**")
    exported, rows = download(page, "Every matching transfer")
    assert exported.suggested_filename.startswith("transfers-in_transit-")
    assert [(r["sku"], r["from_location"], r["to_location"], r["quantity"], r["state"]) for r in rows] == [
        (f"{tag}-SHIP", "MAIN", "S002", "3", "in_transit")
    ]
