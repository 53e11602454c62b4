"""CSV imports, the pure part: read an uploaded file into rows, check every row exactly as the
matching form would (the catalogue's field rules, app/domain/catalogue), and turn each valid row
into a command request.

Nothing here does I/O. The service (app/imports/service.py) finds the items the SKUs name, keeps
the rows and submits them; this module decides what a file and a row mean.

Spreadsheet quirks accepted: a UTF-8 byte order mark, ``;`` as the separator (sniffed from the
header), CRLF line ends, quoted fields (with separators and line breaks inside), columns in any
order and any case, blank lines. Row numbers are the spreadsheet's: the header is row 1.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from app.domain import scope
from app.domain.catalogue import BY_EVENT_TYPE, CommandRequest, CommandSpec, FieldError, InvalidCommand, Places
from app.domain.catalogue.fields import Checker, Sku
from app.domain.catalogue.items import CREATE
from app.domain.catalogue.stock import ADJUST, COUNT
from app.domain.catalogue.transfers import SHIP, TRANSFER
from app.domain.events import EventType

Kind = Literal["counts", "adjustments", "transfers", "items"]
KINDS: tuple[Kind, ...] = ("counts", "adjustments", "transfers", "items")

# A row's life: checked at upload (error or valid), then, once confirmed, submitted as a
# command and finally applied or rejected as the listener decided.
RowStatus = Literal["error", "valid", "submitted", "applied", "rejected"]
ROW_STATUSES: tuple[RowStatus, ...] = ("error", "valid", "submitted", "applied", "rejected")
ImportState = Literal["previewed", "running", "done", "failed"]

# More columns than any layout has, with room for a spreadsheet's extra ones: a row far wider
# (10,000 cells) is a broken file, refused as a whole rather than reported cell by cell.
MAX_COLUMNS = 50
# Errors reported with the upload's answer; the rest are listed by the rows endpoint.
ERRORS_IN_ANSWER = 100
# Item ids of the rows of an items file: the same file and row always name the same new item.
ITEM_IDS = uuid.UUID("0b4b8d0c-55a4-4c55-9d43-5d0e0a1c7f11")
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Layout:
    """The columns of a kind of file."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # Accepted and ignored: a count sheet exported by the product carries the item's name and
    # the expected quantity, for the person counting.
    ignored: tuple[str, ...] = ()
    # Two rows with the same values here are the same row twice (None: every known column).
    key: tuple[str, ...] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional + self.ignored


LAYOUTS: dict[Kind, Layout] = {
    "counts": Layout(("sku", "location", "counted"), ("note",), ("name", "expected"), key=("sku", "location")),
    "adjustments": Layout(("sku", "location", "quantity", "reason"), ("note",)),
    "transfers": Layout(("sku", "from_location", "to_location", "quantity"), ("mode", "note")),
    "items": Layout(("sku", "name"), ("description", "quantity", "location", "low_stock_threshold"), key=("sku",)),
}
TRANSFER_MODES = {"move": TRANSFER, "ship": SHIP}


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_rows: int
    max_columns: int = MAX_COLUMNS


class FileRefused(ValueError):
    """The file as a whole cannot be imported (nothing is kept): empty, not UTF-8, too large,
    a wrong header. ``column`` names the column at fault, when one is."""

    def __init__(self, message: str, *, column: str | None = None, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column
        self.row = row


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    message: str


@dataclass(frozen=True)
class ParsedRow:
    """One data row: its cells as written (by column), every error found, and the command it
    becomes when it has none. Until the SKU is looked up the command names no item (``""``)."""

    number: int
    cells: dict[str, str]
    errors: tuple[RowError, ...]
    command: CommandRequest | None

    @property
    def sku(self) -> str:
        return self.cells.get("sku", "").strip()

    @property
    def valid(self) -> bool:
        return not self.errors and self.command is not None


@dataclass(frozen=True)
class ParsedFile:
    kind: Kind
    digest: str
    columns: tuple[str, ...]
    rows: list[ParsedRow]


# --- the file -------------------------------------------------------------------------------


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str:
    """UTF-8 text, with or without a byte order mark; anything else is refused, with where."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(
            f"the file is not UTF-8 text (byte {exc.start + 1} is not valid UTF-8): "
            "save it as 'CSV UTF-8' from your spreadsheet"
        ) from None


def sniff_separator(text: str) -> str:
    """``;`` when the header has more of them than commas (outside quotes), else ``,``."""
    header, in_quotes = [], False
    for char in text:
        if char == '"':
            in_quotes = not in_quotes
        elif char in "\r\n" and not in_quotes:
            break
        header.append(char)
    line = "".join(header)
    return ";" if line.count(";") > line.count(",") else ","


def _records(text: str, separator: str) -> Iterator[tuple[int, list[str]]]:
    # Records, numbered as a spreadsheet numbers rows (a quoted line break stays in its cell).
    reader = csv.reader(text.splitlines(keepends=True), delimiter=separator, quotechar='"', strict=True)
    number = 0
    while True:
        number += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileRefused(f"row {number} cannot be read as CSV: {exc}", row=number) from None
        yield number, record


def read_header(cells: list[str], kind: Kind, max_columns: int) -> tuple[str, ...]:
    """The header's column names (lower case); unknown, repeated or missing columns are refused,
    each named."""
    if len(cells) > max_columns:
        raise FileRefused(f"the header has {len(cells)} columns; at most {max_columns}", row=1)
    layout = LAYOUTS[kind]
    names = tuple(cell.strip().lstrip("\ufeff").lower() for cell in cells)
    unknown = [name or "(blank)" for name in names if name not in layout.columns]
    if unknown:
        optional = f" and optionally {', '.join(layout.optional)}" if layout.optional else ""
        raise FileRefused(
            f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for a {kind} file; "
            f"expected {', '.join(layout.required)}{optional}",
            column=unknown[0],
            row=1,
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FileRefused(f"column {', '.join(repeated)} appears more than once", column=repeated[0], row=1)
    missing = [name for name in layout.required if name not in names]
    if missing:
        raise FileRefused(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} for a {kind} file",
            column=missing[0],
            row=1,
        )
    return names


def parse_file(data: bytes, kind: Kind, places: Places, limits: Limits) -> ParsedFile:
    """Every row of the file, each checked; FileRefused when the file itself is unusable."""
    if kind not in LAYOUTS:
        raise FileRefused(f"kind must be one of: {', '.join(KINDS)}", column="kind")
    if len(data) > limits.max_bytes:
        raise FileRefused(f"the file is larger than {limits.max_bytes} bytes")
    text = decode_text(data)
    if not text.strip():
        raise FileRefused("the file is empty: it needs a header row and at least one row")
    records = _records(text, sniff_separator(text))
    header: tuple[str, ...] | None = None
    rows: list[ParsedRow] = []
    seen: dict[tuple[str, ...], int] = {}
    for number, cells in records:
        if header is None:
            if not any(cell.strip() for cell in cells):
                raise FileRefused("the first row must be the header (the column names)", row=number)
            header = read_header(cells, kind, limits.max_columns)
            continue
        if len(cells) > limits.max_columns:
            raise FileRefused(f"row {number} has {len(cells)} columns; at most {limits.max_columns}", row=number)
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, as spreadsheets leave at the end
        if len(rows) >= limits.max_rows:
            raise FileRefused(f"the file has more than {limits.max_rows} rows; split it into smaller files")
        rows.append(check_row(kind, header, cells, number, places, seen))
    if header is None:
        raise FileRefused("the file is empty: it needs a header row and at least one row")
    if not rows:
        raise FileRefused("the file has a header but no rows")
    return ParsedFile(kind, file_digest(data), header, rows)


# --- a row ----------------------------------------------------------------------------------


def _spec_for(kind: Kind, cells: Mapping[str, str], errors: list[RowError], number: int) -> CommandSpec:
    if kind == "counts":
        return COUNT
    if kind == "adjustments":
        return ADJUST
    if kind == "items":
        return CREATE
    mode = cells.get("mode", "").strip().lower() or "move"
    if mode not in TRANSFER_MODES:
        # Said once; the other cells are still checked (as a move) so every error shows at once.
        errors.append(RowError(number, "mode", f"must be one of: {', '.join(TRANSFER_MODES)}"))
        return TRANSFER
    return TRANSFER_MODES[mode]


def check_row(
    kind: Kind,
    header: tuple[str, ...],
    cells: list[str],
    number: int,
    places: Places,
    seen: dict[tuple[str, ...], int] | None = None,
) -> ParsedRow:
    """All errors of a row at once, each with its column; the command when there are none."""
    layout = LAYOUTS[kind]
    by_column = {name: (cells[i] if i < len(cells) else "") for i, name in enumerate(header)}
    errors: list[RowError] = []
    if len(cells) > len(header):
        errors.append(RowError(number, "", f"the row has {len(cells)} cells; the header has {len(header)}"))
    for name in layout.required:
        if not by_column.get(name, "").strip():
            errors.append(RowError(number, name, "is required"))
    check = Checker(places)
    Sku().clean("sku", by_column.get("sku"), check)
    spec = _spec_for(kind, by_column, errors, number)
    command: CommandRequest | None = None
    form = {name: by_column[name] for name in spec.fields if name in by_column}
    try:
        command = spec.check_form(form, item_id="", places=places)
    except InvalidCommand as exc:
        check.errors.extend(exc.errors)
    errors.extend(_row_errors(number, check.errors, already={e.column for e in errors}))
    if seen is not None:
        key_columns = layout.key or tuple(name for name in header if name not in layout.ignored)
        key = tuple(_key_text(name, by_column.get(name, "")) for name in key_columns)
        first = seen.setdefault(key, number)
        if first != number:
            errors.append(RowError(number, key_columns[0], f"duplicate of row {first} (same {', '.join(key_columns)})"))
    return ParsedRow(number, by_column, tuple(errors), None if errors else command)


def _key_text(column: str, value: str) -> str:
    # SKUs are compared as written; locations and words in any case, as the rules read them.
    text = value.strip()
    return text if column == "sku" else text.upper()


def _row_errors(number: int, found: list[FieldError], already: set[str]) -> list[RowError]:
    errors, named = [], set(already)
    for error in found:
        if error.field in named:
            continue  # "is required" said once per cell
        named.add(error.field)
        errors.append(RowError(number, error.field, error.message))
    return errors


def with_item(row: ParsedRow, kind: Kind, item_ids: Mapping[str, str], digest: str) -> ParsedRow:
    """The row's command aimed at its item: the live item its SKU names; for a new item, an id
    derived from the file and the row (the same upload names the same new item). A SKU that
    names no item (or, for a new item, one already taken) is the row's error."""
    existing = item_ids.get(row.sku)
    if row.command is None:
        # Every error at once: an unknown SKU too, when the SKU itself is well formed.
        if kind != "items" and existing is None and row.sku and all(e.column != "sku" for e in row.errors):
            return _failed(row, "sku", "no item has this SKU")
        return row
    if kind == "items":
        if existing is not None:
            return _failed(row, "sku", "an item with this SKU already exists")
        item_id = str(uuid.uuid5(ITEM_IDS, f"{digest}:{row.number}"))
    elif existing is None:
        return _failed(row, "sku", "no item has this SKU")
    else:
        item_id = existing
    return dataclasses.replace(row, command=dataclasses.replace(row.command, item_id=item_id))


def within_scope(row: ParsedRow, allowed: Collection[str]) -> ParsedRow:
    """A store-limited user's row at another store is an error, as the form would refuse it."""
    if row.command is None or not allowed:
        return row
    spec = BY_EVENT_TYPE[row.command.event_type]
    refused = scope.refusal(spec, row.command, allowed)
    if refused is None:
        return row
    column = spec.location_field if spec.location_field in row.cells else "location"
    return _failed(row, column if refused.location else "sku", refused.message)


def _failed(row: ParsedRow, column: str, message: str) -> ParsedRow:
    return dataclasses.replace(row, errors=(*row.errors, RowError(row.number, column, message)), command=None)


# --- submitting ------------------------------------------------------------------------------


def idempotency_key(kind: Kind, digest: str, number: int) -> str:
    """The same file's same row is the same command, however often it is uploaded."""
    return f"import:{kind}:{digest}:{number}"


class _StoredCommand(msgspec.Struct):
    event_type: str
    item_id: str
    location: str
    data: dict[str, Any]


def encode_command(command: CommandRequest) -> bytes:
    """A checked command as kept with its row until it is submitted (maybe after a restart)."""
    return msgspec.json.encode(
        {
            "event_type": command.event_type.value,
            "item_id": command.item_id,
            "location": command.location,
            "data": msgspec.to_builtins(command.data),
        }
    )


def decode_command(value: bytes | str) -> CommandRequest:
    stored = msgspec.json.decode(value, type=_StoredCommand)
    event_type = EventType(stored.event_type)
    data = msgspec.convert(stored.data, BY_EVENT_TYPE[event_type].data)
    return CommandRequest(event_type, stored.item_id, stored.location, data)


@dataclass(frozen=True)
class Progress:
    """How far an import is, by row status."""

    rows: int = 0
    error: int = 0
    valid: int = 0
    submitted: int = 0
    applied: int = 0
    rejected: int = 0

    @property
    def valid_rows(self) -> int:
        """Rows that passed the checks, whatever became of them since."""
        return self.valid + self.submitted + self.applied + self.rejected

    @property
    def pending(self) -> int:
        return self.valid + self.submitted

    @property
    def finished(self) -> int:
        return self.applied + self.rejected

    @property
    def percent(self) -> int:
        return 100 if not self.valid_rows else (100 * self.finished) // self.valid_rows

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> Progress:
        known = {status: int(counts.get(status, 0)) for status in ROW_STATUSES}
        return cls(rows=sum(known.values()), **known)
