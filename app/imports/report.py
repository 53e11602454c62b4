"""An import's report as CSV: one line per row of the file, its status, why, the command it
became, then the row's own cells. Streamed page by page, so 100,000 rows never sit in memory.

Cells are escaped against formula injection (app/domain/audit.py ``csv_cell``): the report
hands back what someone uploaded, and a cell like ``=cmd|...`` must not run when it is opened.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator

from app.domain.audit import csv_cell
from app.imports.store import ImportRecord, ImportStore, StoredRow

REPORT_COLUMNS = ("row", "status", "reason", "command_id")
PAGE = 1000
_WHOLE_NUMBER = re.compile(r"^[+-]?\d{1,18}$")


def _cell(text: str) -> str | int:
    # A number stays a number (a -2 adjustment is not a formula); any other text is escaped.
    stripped = text.strip()
    return csv_cell(int(stripped) if _WHOLE_NUMBER.match(stripped) else text)


def _reason(row: StoredRow) -> str:
    if row.errors:
        return "; ".join(f"{e.column}: {e.message}" if e.column else e.message for e in row.errors)
    return row.reason or ""


def _line(values: list[str | int]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode()


async def report_lines(store: ImportStore, record: ImportRecord) -> AsyncIterator[bytes]:
    columns = [name for name in record.columns if name not in REPORT_COLUMNS]
    yield _line([*REPORT_COLUMNS, *columns])
    after = 0
    while True:
        rows = await store.rows(record.id, after=after, limit=PAGE)
        if not rows:
            return
        chunk = b"".join(
            _line(
                [
                    row.row,
                    row.status,
                    csv_cell(_reason(row)),
                    row.command_id or "",
                    *(_cell(row.cells.get(name, "")) for name in columns),
                ]
            )
            for row in rows
        )
        yield chunk
        after = rows[-1].row
