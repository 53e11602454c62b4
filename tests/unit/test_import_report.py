"""An import kept in its SQLite file, and its report: every row in file order, statuses moving
only forward, and cells escaped against formula injection."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from app.domain.catalogue import Places
from app.domain.imports import Limits, encode_command, parse_file, with_item
from app.imports.report import report_lines
from app.imports.store import ImportRecord, ImportStore

PLACES = Places(("MAIN", "S001"), "MAIN")


async def test_the_report_lists_every_row_with_its_outcome_and_escapes_formulas(tmp_path: Path) -> None:
    data = (
        b"sku,location,quantity,reason,note\n"
        b"A,MAIN,-2,sold,=cmd|' /C calc'!A0\nA,MAIN,x,sold,@SUM(1)\nA,S001,3,received,\n"
    )
    parsed = parse_file(data, "adjustments", PLACES, Limits(max_bytes=10_000, max_rows=10))
    rows = [with_item(row, "adjustments", {"A": "item-a"}, parsed.digest) for row in parsed.rows]
    record = ImportRecord(
        "imp-1", "adjustments", parsed.digest, "f.csv", "ann", parsed.columns, "2026-12-03T10:00:00.000Z",
        "previewed", None, None,
    )  # fmt: skip
    store = ImportStore(tmp_path / "imports.db")
    await store.open()
    try:
        await store.create(record, rows, [encode_command(r.command) if r.command else None for r in rows])
        assert await store.set_state("imp-1", "running", at="2026-12-03T10:01:00.000Z", column="confirmed_at")
        assert not await store.set_state("imp-1", "running", at="2026-12-03T10:02:00.000Z", column="confirmed_at")
        await store.mark_submitted("imp-1", [(2, "cmd-2"), (4, "cmd-4")])
        await store.mark_decided("imp-1", [(2, "applied", None), (4, "rejected", "insufficient stock")])
        # A late, repeated answer does not move a decided row again.
        await store.mark_decided("imp-1", [(4, "applied", None)])
        progress = await store.progress("imp-1")
        assert (progress.rows, progress.error, progress.applied, progress.rejected, progress.pending) == (3, 1, 1, 1, 0)

        text = b"".join([line async for line in report_lines(store, record)]).decode()
    finally:
        await store.close()
    assert text.endswith("\r\n")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [(line["row"], line["status"], line["command_id"]) for line in lines] == [
        ("2", "applied", "cmd-2"),
        ("3", "error", ""),
        ("4", "rejected", "cmd-4"),
    ]
    assert lines[0]["note"] == "'=cmd|' /C calc'!A0"
    assert lines[0]["quantity"] == "-2"  # a number stays a number
    assert lines[1]["note"] == "'@SUM(1)"
    assert lines[1]["reason"] == "quantity: must be a whole number"
    assert lines[2]["reason"] == "insufficient stock"
