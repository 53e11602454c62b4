"""CSV text for the exports, as pure pieces (no I/O): cells, lines, a header.

One writer for every export (items, history, transfers, reservations, the audit log), so they
all quote, escape and end lines the same way:

* RFC 4180: fields separated by commas, lines ended by CRLF, a field quoted when it holds a
  comma, a quote, CR or LF, a quote inside written twice.
* No CSV injection (OWASP, "CSV Injection"): a text cell starting with a character that makes a
  spreadsheet read it as a formula (= + - @, tab, CR) gets a leading apostrophe. Numbers are
  written as numbers: -3 is a delta, not a formula.
* The byte order mark is the caller's choice (``BOM``): spreadsheet programs need it to read a
  file as UTF-8, scripts usually do not want it. The exports add it on request only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# The characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Written first, it tells a spreadsheet the file is UTF-8 (U+FEFF, three bytes in UTF-8).
BOM = "\ufeff"
LINE_END = "\r\n"
_NEEDS_QUOTES = (",", '"', "\r", "\n")

Cell = str | int | float | bool | None


def cell(value: Cell) -> str:
    """A value as a CSV field: escaped against formulas, quoted when it must be."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = "'" + value if value.startswith(FORMULA_STARTS) else value
    if any(mark in text for mark in _NEEDS_QUOTES):
        return '"' + text.replace('"', '""') + '"'
    return text


def line(values: Iterable[Cell]) -> str:
    """One record, CRLF-terminated."""
    return ",".join(cell(value) for value in values) + LINE_END


def header(columns: Sequence[str], *, bom: bool = False) -> str:
    """The first line of a file: the column names (and the BOM first when asked for)."""
    return (BOM if bom else "") + line(columns)


def lines(rows: Iterable[Iterable[Cell]]) -> str:
    """Many records as one chunk of text (one chunk per batch read keeps the writes few)."""
    return "".join(line(row) for row in rows)
