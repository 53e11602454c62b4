"""The audit log's pure pieces: filters from a query string, the cursor, the merge of applied and
rejected entries into exact keyset pages, and CSV cells a spreadsheet will not run."""

from __future__ import annotations

import csv
import io

import pytest

from app.domain.audit import (
    AuditEntry,
    AuditFilters,
    BadCursor,
    Cursor,
    csv_cell,
    csv_row,
    decode_cursor,
    merge_page,
    parse_filters,
)
from app.domain.catalogue import InvalidCommand

LOCATIONS = ("MAIN", "S001")


def applied(entry_id: int, at: str, **fields: object) -> AuditEntry:
    defaults: dict[str, object] = {"actor": "ann", "event_type": "inventory.stock.adjusted", "item_id": "i1"}
    return AuditEntry(kind="applied", at=at, command_id=f"c{entry_id}", id=entry_id, **{**defaults, **fields})  # type: ignore[arg-type]


def rejected(command_id: str, at: str) -> AuditEntry:
    return AuditEntry(
        kind="rejected", at=at, actor="bob", event_type="inventory.stock.reserved", item_id="i1", command_id=command_id
    )


def test_filters_are_normalised_and_blank_ones_are_no_filter() -> None:
    filters = parse_filters(
        {"actor": " Ann ", "item": "SKU-1", "location": "s001", "reason": "Damaged", "event_type": "adjusted",
         "kind": "", "cursor": "x"},
        LOCATIONS,
    )  # fmt: skip
    assert filters == AuditFilters(
        actor="ann", item="SKU-1", location="S001", reason="damaged", event_type="inventory.stock.adjusted"
    )
    assert parse_filters({"actor": "", "location": "  "}, LOCATIONS) == AuditFilters()
    assert parse_filters({"kind": "Rejected"}, LOCATIONS).kind == "rejected"


def test_each_bad_filter_is_named() -> None:
    with pytest.raises(InvalidCommand) as refused:
        parse_filters(
            {"location": "NOWHERE", "reason": "'; drop", "event_type": "exploded", "kind": "maybe", "actor": "a" * 65},
            LOCATIONS,
        )
    assert {error.field for error in refused.value.errors} == {"location", "reason", "event_type", "kind", "actor"}


def test_filters_admit_only_matching_entries() -> None:
    filters = AuditFilters(actor="ann", location="S001", item_id="i1")
    assert filters.admits(applied(1, "t", location="S001"))
    assert not filters.admits(applied(1, "t", location="MAIN"))
    assert not filters.admits(applied(1, "t", location="S001", actor="bob"))
    assert not AuditFilters(kind="applied").admits(rejected("r", "t"))
    assert AuditFilters(reason="damaged").admits(applied(1, "t", reason="damaged"))


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    cursor = Cursor(41, ("2026-12-03T10:00:00.000Z", "0b7a1f52-6f0e-4d36-9a52-1c1f2e3d4c5b"))
    assert decode_cursor(cursor.encode()) == cursor
    assert decode_cursor(Cursor(7).encode()) == Cursor(7)
    assert decode_cursor(Cursor().encode()) == Cursor()
    assert decode_cursor(None) == Cursor()
    forgeries = ("zzz", "W10", Cursor(-1).encode(), "41~2026-12-03T10:00:00.000Z~abc", "41~'; DROP TABLE history")
    for forged in forgeries:
        with pytest.raises(BadCursor):
            decode_cursor(forged)


def test_pages_merge_both_sources_by_time_and_continue_exactly_after_what_was_shown() -> None:
    history = [applied(n, f"2026-12-03T10:00:{n:02d}.000Z") for n in range(9, 0, -1)]  # ids 9..1, newest first
    refusals = [rejected(f"r{n}", f"2026-12-03T10:00:{n:02d}.500Z") for n in (8, 4, 1)]
    seen: list[AuditEntry] = []
    cursor: Cursor | None = Cursor()
    pages = 0
    while cursor is not None:
        # What each source gives from the cursor on: at most limit + 1 rows.
        a = [e for e in history if cursor.history_before is None or (e.id or 0) < cursor.history_before][:5]
        r = [e for e in refusals if cursor.rejected_before is None or (e.at, e.command_id) < cursor.rejected_before][:5]
        page, cursor = merge_page(a, r, cursor, 4)
        assert len(page) <= 4
        seen += page
        pages += 1
    assert seen == sorted([*history, *refusals], key=lambda e: e.at, reverse=True)
    assert pages == 3


def test_formula_cells_are_escaped_and_numbers_stay_numbers() -> None:
    for dangerous in ("=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(dangerous) == "'" + dangerous
    assert csv_cell("plain") == "plain"
    assert csv_cell(-3) == -3
    assert csv_cell(None) == ""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(csv_row(applied(7, "2026-12-03T10:00:00.000Z", name='=HYPERLINK("x")', note="-5")))
    row = next(csv.reader(io.StringIO(buffer.getvalue())))
    assert '\'=HYPERLINK("x")' in row
    assert "'-5" in row
