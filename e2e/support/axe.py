"""Accessibility checks with axe-core, vendored in e2e/vendor (scripts/vendor-static.sh).

axe runs inside the page through the browser's debugging protocol (``page.evaluate``), so the
pages' Content-Security-Policy, which allows no inline or injected scripts, stays as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_SOURCE = (Path(__file__).resolve().parents[1] / "vendor" / "axe.min.js").read_text(encoding="utf-8")
# What a check fails on: axe's two highest impacts.
BLOCKING = ("serious", "critical")


def violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (WCAG 2.0-2.2 A and AA rules, and best practices)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    result: dict[str, Any] = page.evaluate(
        """async () => await window.axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
            resultTypes: ["violations"],
        })"""
    )
    return list(result["violations"])


def blocking(page: Page) -> list[str]:
    """The serious and critical violations, one readable line per element."""
    lines = []
    for violation in violations(page):
        if violation.get("impact") not in BLOCKING:
            continue
        for node in violation["nodes"]:
            lines.append(f"{violation['id']} ({violation['impact']}): {node['target']} - {node['failureSummary']}")
    return lines
