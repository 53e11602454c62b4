"""A CSV import in Chromium, as a store manager does one: upload a 500-row adjustments file with
some bad rows, read the preview with each row's errors, confirm, watch the progress bar reach
the end without reloading, and download the report."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from e2e.support.api import Api
from e2e.support.ui import LoggedIn, mark_document, same_document

ROWS = 500
# Spreadsheet rows (the header is row 1) written wrong on purpose, and what the preview says.
BAD = {
    12: ("quantity", "must be a whole number"),
    57: ("location", "unknown location 'S999'"),
    130: ("sku", "no item has this SKU"),
    222: ("reason", "must be one of"),
}


def _file(tag: str, tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """500 rows receiving one unit each into three items (a formula in a note, to be escaped in
    the report); the expected gain per SKU from the good rows."""
    skus = [f"{tag}-A", f"{tag}-B", f"{tag}-C"]
    gained = dict.fromkeys(skus, 0)
    lines = ["SKU;Location;Quantity;Reason;Note"]
    for row in range(2, ROWS + 2):
        sku, location, quantity, reason, note = skus[row % 3], "MAIN", "1", "received", f"delivery line {row}"
        if row == 12:
            quantity = "one"
        elif row == 57:
            location = "S999"
        elif row == 130:
            sku = f"{tag}-NOPE"
        elif row == 222:
            reason = "gift"
        else:
            gained[sku] += 1
        if row == 300:
            note = "=cmd|' /C calc'!A0"
        lines.append(";".join([sku, location, quantity, reason, note]))
    path = tmp_path / f"{tag}-deliveries.csv"
    # As a spreadsheet saves it: a byte order mark, semicolons, CRLF.
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    return path, gained


def test_import_preview_confirm_progress_and_report(logged_in: LoggedIn, api: Api, tag: str, tmp_path: Path) -> None:
    items = {sku: api.create_item(sku, f"Imported {sku}", quantity=5) for sku in (f"{tag}-A", f"{tag}-B", f"{tag}-C")}
    path, gained = _file(tag, tmp_path)

    page: Page = logged_in("manager", "/")
    page.get_by_role("link", name="Imports").click()
    expect(page.get_by_role("heading", name="Imports", exact=True)).to_be_visible()
    expect(page.locator(".import-help")).to_contain_text("100,000 rows")
    page.get_by_label("What the file holds").select_option("adjustments")
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Check the file").click()

    # The preview: every row listed, nothing applied yet.
    expect(page).to_have_url(re.compile(r"/imports/[0-9a-f-]{36}$"))
    expect(page.locator("#import-state")).to_have_text("previewed")
    expect(page.locator("#count-rows")).to_have_text(str(ROWS))
    expect(page.locator("#count-errors")).to_have_text(str(len(BAD)))
    expect(page.locator("#count-valid")).to_have_text(str(ROWS - len(BAD)))
    for row, (column, message) in BAD.items():
        if row > 101:
            continue  # on a later page of the preview
        line = page.locator(f"#import-row-{row}")
        expect(line.locator(".import-status")).to_have_text("error")
        expect(line.locator(".row-errors")).to_contain_text(f"{column}: {message}")
    assert api.item(items[f"{tag}-A"]["id"])["quantity"] == 5

    # Only the rows with errors, all four on one page.
    page.get_by_role("link", name=re.compile("Show only rows with errors")).click()
    expect(page.locator("tr.import-row")).to_have_count(len(BAD))
    for row, (column, message) in BAD.items():
        expect(page.locator(f"#import-row-{row} .row-errors")).to_contain_text(f"{column}: {message}")
    page.get_by_role("link", name="Show every row").click()

    page.get_by_role("button", name=f"Confirm and apply {ROWS - len(BAD)} rows").click()
    expect(page.locator("#import-state")).to_have_text(re.compile("running|done"))
    mark_document(page)
    # The bar moves live and ends full, without a reload.
    expect(page.locator("#import-finished")).to_have_text("Finished:", timeout=120_000)
    assert same_document(page)
    expect(page.locator("#import-state")).to_have_text("done")
    bar = page.locator("#import-bar")
    expect(bar).to_have_attribute("max", str(ROWS - len(BAD)))
    expect(bar).to_have_attribute("value", str(ROWS - len(BAD)))
    expect(page.locator("#count-applied")).to_have_text(str(ROWS - len(BAD)))
    expect(page.locator("#count-rejected")).to_have_text("0")
    for sku, units in gained.items():
        assert api.item(items[sku]["id"])["quantity"] == 5 + units

    # The report: every row, its outcome and its cells; the formula escaped.
    with page.expect_download() as download:
        page.locator("#import-report").click()
    report = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert len(report) == ROWS
    by_row = {int(line["row"]): line for line in report}
    assert {line["status"] for row, line in by_row.items() if row not in BAD} == {"applied"}
    assert all(re.fullmatch(r"[0-9a-f-]{36}", line["command_id"]) for row, line in by_row.items() if row not in BAD)
    for row, (column, message) in BAD.items():
        assert by_row[row]["status"] == "error"
        assert f"{column}: {message}" in by_row[row]["reason"]
        assert by_row[row]["command_id"] == ""
    assert by_row[300]["note"] == "'=cmd|' /C calc'!A0"
    assert by_row[2]["sku"] == f"{tag}-C" and by_row[2]["quantity"] == "1"
