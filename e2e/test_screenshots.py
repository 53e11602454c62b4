"""Screenshots of the dashboard and the stock wall, kept as test artifacts and used by the README."""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

from playwright.sync_api import expect

from e2e.support.api import Api
from e2e.support.ui import LoggedIn, newest_badge, open_details, row
from tests.support.services import REPO

DOCS = REPO / "docs" / "screenshots"
STORE = "S001"
# sku, name, on hand, reserved, low-stock threshold (None: the default)
SHELF: list[tuple[str, str, int, int, int | None]] = [
    ("BAK-CRS-01", "Butter croissant", 6, 6, None),
    ("BAK-SRD-800", "Sourdough loaf 800 g", 18, 2, None),
    ("BEV-ORJ-1L", "Orange juice 1 l", 12, 0, None),
    ("BEV-SPK-6", "Sparkling water 6 x 1.5 l", 42, 5, None),
    ("CAF-ESP-1KG", "Espresso beans 1 kg", 24, 0, None),
    ("CON-DRK-85", "Dark chocolate 85 %", 9, 0, 10),
    ("DAI-CHD-200", "Cheddar 200 g", 15, 1, None),
    ("DAI-OAT-1L", "Oat milk 1 l", 4, 0, None),
    ("EGG-FR-12", "Free-range eggs, box of 12", 30, 26, None),
]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def _publish(shot: Path, name: str) -> None:
    """Refresh the README's screenshots only when asked (INVENTORY_UPDATE_SCREENSHOTS=1), so a
    test run leaves the checkout as it was."""
    if os.environ.get("INVENTORY_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS / name)


def test_screenshots_of_the_dashboard_and_the_wall_with_some_low_stock(
    logged_in: LoggedIn, api: Api, artifacts: Path
) -> None:
    ids: dict[str, str] = {}
    for sku, name, quantity, reserved, threshold in SHELF:
        item = api.create_item(sku, name, quantity=quantity, location=STORE, low_stock_threshold=threshold)
        ids[sku] = item["id"]
        if reserved:
            assert api.move(item["id"], "reserve", reserved, location=STORE).status_code == 200

    dashboard = logged_in("manager", f"/?location={STORE}", viewport={"width": 1440, "height": 900})
    expect(dashboard.locator("#rows tr")).to_have_count(len(SHELF))
    expect(dashboard.locator("#rows tr.low")).to_have_count(4)
    # One command from the page, so the picture shows its badge too.
    espresso = row(dashboard, ids["CAF-ESP-1KG"])
    summary = espresso.get_by_role("button", name="Stock")
    open_details(summary)
    espresso.get_by_label("Quantity").fill("3")
    espresso.get_by_role("button", name="Reserve").click()
    expect(newest_badge(dashboard)).to_have_text("applied")
    expect(espresso.locator("td.available")).to_have_text(re.compile(r"^21\b"))
    # The live update of the row has closed its stock form already; make sure it is closed.
    if espresso.locator("details:has(.stock-form)").evaluate("details => details.open"):
        summary.click()
    expect(espresso.locator("details:has(.stock-form)")).not_to_have_attribute("open", "")

    dashboard.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    shot = artifacts / "dashboard.png"
    dashboard.screenshot(path=shot)
    assert _png_size(shot) == (1440, 900)
    _publish(shot, "dashboard.png")

    wall = logged_in("viewer", f"/wall?location={STORE}", viewport={"width": 1920, "height": 1080})
    expect(wall.locator("article.tile")).to_have_count(len(SHELF))
    expect(wall.locator("article.tile.low")).to_have_count(3)
    expect(wall.locator("article.tile.out")).to_have_count(1)
    shot = artifacts / "wall.png"
    wall.screenshot(path=shot)
    assert _png_size(shot) == (1920, 1080)
    _publish(shot, "wall.png")
