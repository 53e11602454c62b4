"""CSV exports of the query service: the item list, an item's history, transfers, reservations.

Every export is streamed: rows are read in keyset batches from the read-only reader (never
OFFSET, never the whole result) and each batch is written as one chunk, so a million rows hold
one batch in memory and every batch is an await that lets other requests through. The header
and the first batch are read before the response starts, so a bad filter or an unreadable
database is still an error status, not a broken file. Cells are written by app/domain/csvtext.py
(RFC 4180, CRLF, formula cells escaped); ``bom=true`` adds the byte order mark spreadsheets want.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter, QueryParameter
from litestar.response import Stream

from app.auth.roles import Role
from app.domain import csvtext, rules
from app.domain.catalogue import FieldError, InvalidCommand, check_item_id
from app.domain.csvtext import Cell
from app.domain.model import ReservationState, TransferState
from app.domain.records import HistoryEntry, ItemView, ReservationView, TransferView
from app.domain.reservations import REFERENCE_MAX
from app.domain.views import item_view
from app.http.auth import requires
from app.http.errors import ApiError, ErrorBody
from app.queries.controllers import MAX_QUERY_LENGTH, check_location, check_locations
from app.reader import InventoryReader
from app.settings import Settings

# About this many rows per read: a batch of items holds one row per item and location.
ROWS_PER_BATCH = 2000
LAYOUTS = ("long", "wide", "counts")
TRANSFER_STATES = tuple(state.value for state in TransferState)
RESERVATION_STATES = tuple(state.value for state in ReservationState)
FILE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

LONG_COLUMNS = ("sku", "name", "location", "quantity", "reserved", "available", "threshold", "state", "updated_at")
# The count sheet is exactly what a counts import takes: fill in ``counted``, upload it.
COUNT_COLUMNS = ("sku", "name", "location", "expected", "counted")
WIDE_TOTALS = ("quantity", "reserved", "available", "threshold")
HISTORY_COLUMNS = (
    "id", "applied_at", "occurred_at", "type", "location", "quantity_delta", "reserved_delta", "quantity_after",
    "reserved_after", "reason", "reference", "expected", "note", "actor", "version", "command_id",
)  # fmt: skip
TRANSFER_COLUMNS = (
    "id", "sku", "name", "item_id", "from_location", "to_location", "quantity", "received", "state", "shipped_at",
    "closed_at", "note",
)  # fmt: skip
RESERVATION_COLUMNS = (
    "id", "sku", "name", "item_id", "location", "quantity", "reserved", "state", "reference", "expires_at",
    "created_at", "closed_at",
)  # fmt: skip

BOM_PARAMETER = Parameter(description="true: start the file with a UTF-8 byte order mark (for spreadsheet programs)")
CSV_RESPONSES = {
    200: ResponseSpec(str, media_type="text/csv", description="CSV, streamed"),
    400: ResponseSpec(ErrorBody),
}


# --- rows (pure) ---------------------------------------------------------------------------


def long_rows(item: ItemView, default_threshold: int, *, only_stocked: bool) -> Iterable[list[Cell]]:
    """One row per level of the item; an item with none, one row without a location (unless
    the export is narrowed to locations: then only what is stocked there)."""
    threshold = item.low_stock_threshold if item.low_stock_threshold is not None else default_threshold
    if not item.locations:
        if not only_stocked:
            state = rules.stock_state(item.available, item.low_stock_threshold, default_threshold)
            yield [item.sku, item.name, None, item.quantity, item.reserved, item.available, threshold, state.value,
                   item.updated_at]  # fmt: skip
        return
    for level in item.locations:
        state = rules.stock_state(level.available, item.low_stock_threshold, default_threshold)
        yield [item.sku, item.name, level.location, level.quantity, level.reserved, level.available, threshold,
               state.value, level.updated_at]  # fmt: skip


def count_rows(item: ItemView) -> Iterable[list[Cell]]:
    """A count sheet's rows: one per level, what is on hand expected, ``counted`` left empty."""
    for level in item.locations:
        yield [item.sku, item.name, level.location, level.quantity, None]


def wide_row(item: ItemView, locations: Sequence[str], default_threshold: int) -> list[Cell]:
    """One row per item: on hand at each location (empty where it has no level), then the totals
    of those locations, so a row adds up whatever locations the export was narrowed to."""
    levels = {level.location: level for level in item.locations if level.location in locations}
    threshold = item.low_stock_threshold if item.low_stock_threshold is not None else default_threshold
    quantity = sum(level.quantity for level in levels.values())
    reserved = sum(level.reserved for level in levels.values())
    cells = [levels[code].quantity if code in levels else None for code in locations]
    return [item.sku, item.name, *cells, quantity, reserved, quantity - reserved, threshold]


def history_row(entry: HistoryEntry) -> list[Cell]:
    return [
        entry.id, entry.applied_at, entry.occurred_at, entry.type, entry.location, entry.quantity_delta,
        entry.reserved_delta, entry.quantity_after, entry.reserved_after, entry.reason, entry.reference,
        entry.expected, entry.note, entry.actor, entry.version, entry.command_id,
    ]  # fmt: skip


def transfer_row(transfer: TransferView, sku: str | None, name: str | None) -> list[Cell]:
    return [
        transfer.id, sku, name, transfer.item_id, transfer.from_location, transfer.to_location, transfer.quantity,
        transfer.received, transfer.state, transfer.shipped_at, transfer.closed_at, transfer.note,
    ]  # fmt: skip


def reservation_row(reservation: ReservationView, sku: str | None, name: str | None) -> list[Cell]:
    return [
        reservation.id, sku, name, reservation.item_id, reservation.location, reservation.quantity,
        reservation.reserved, reservation.state, reservation.reference, reservation.expires_at,
        reservation.created_at, reservation.closed_at,
    ]  # fmt: skip


def file_name(*parts: str | None) -> str:
    """``<parts>-<UTC date and time>.csv``, in characters any header and file system take."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return FILE_NAME_UNSAFE.sub("_", "-".join([*(part for part in parts if part), stamp]) + ".csv")


# --- streams ---------------------------------------------------------------------------------


async def item_chunks(
    reader: InventoryReader,
    *,
    layout: str,
    q: str | None,
    locations: Sequence[str] | None,
    all_locations: Sequence[str],
    default_threshold: int,
    bom: bool,
) -> AsyncIterator[str]:
    shown = list(locations) if locations is not None else list(all_locations)
    columns = {"long": LONG_COLUMNS, "counts": COUNT_COLUMNS}.get(layout) or ("sku", "name", *shown, *WIDE_TOTALS)
    yield csvtext.header(columns, bom=bom)
    per_batch = max(1, ROWS_PER_BATCH // max(1, len(shown)))
    after: str | None = None
    while True:
        items = await reader.export_items(after_sku=after, limit=per_batch, q=q, locations=locations)
        if not items:
            return
        views = [item_view(item) for item in items]
        if layout == "long":
            rows = [row for view in views for row in long_rows(view, default_threshold, only_stocked=bool(locations))]
        elif layout == "counts":
            rows = [row for view in views for row in count_rows(view)]
        else:
            rows = [wide_row(view, shown, default_threshold) for view in views if view.locations or not locations]
        yield csvtext.lines(rows)
        if len(items) < per_batch:
            return
        after = items[-1].sku


async def history_chunks(reader: InventoryReader, item_id: str, bom: bool) -> AsyncIterator[str]:
    yield csvtext.header(HISTORY_COLUMNS, bom=bom)
    before: int | None = None
    while True:
        entries = await reader.history(item_id, limit=ROWS_PER_BATCH, before=before)
        if not entries:
            return
        yield csvtext.lines(history_row(entry) for entry in entries)
        if len(entries) < ROWS_PER_BATCH:
            return
        before = entries[-1].id


async def transfer_chunks(
    reader: InventoryReader, *, item_id: str | None, location: str | None, state: str | None, bom: bool
) -> AsyncIterator[str]:
    yield csvtext.header(TRANSFER_COLUMNS, bom=bom)
    after: tuple[str, str] | None = None
    while True:
        found = await reader.export_transfers(
            item_id=item_id, location=location, state=state, after=after, limit=ROWS_PER_BATCH
        )
        if not found:
            return
        yield csvtext.lines(transfer_row(*row) for row in found)
        if len(found) < ROWS_PER_BATCH:
            return
        after = (found[-1][0].shipped_at, found[-1][0].id)


async def reservation_chunks(
    reader: InventoryReader,
    *,
    item_id: str | None,
    location: str | None,
    reference: str | None,
    state: str | None,
    bom: bool,
) -> AsyncIterator[str]:
    yield csvtext.header(RESERVATION_COLUMNS, bom=bom)
    before: int | None = None
    while True:
        found, before = await reader.export_reservations(
            item_id=item_id, location=location, reference=reference, state=state, before_seq=before,
            limit=ROWS_PER_BATCH,
        )  # fmt: skip
        if found:
            yield csvtext.lines(reservation_row(*row) for row in found)
        if before is None:
            return


async def attachment(chunks: AsyncIterator[str], name: str) -> Stream:
    """The chunks as a streamed CSV attachment. The header and the first batch are read here,
    before the status line is sent: a database that cannot be read is a 503, not half a file."""
    head = [await anext(chunks, ""), await anext(chunks, "")]

    async def body() -> AsyncIterator[str]:
        yield "".join(head)
        async for chunk in chunks:
            yield chunk

    return Stream(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


# --- HTTP ------------------------------------------------------------------------------------


def _state(value: str | None, states: tuple[str, ...]) -> str | None:
    if value is None or not value.strip():
        return None
    if value.strip().lower() not in states:
        raise InvalidCommand([FieldError("state", f"must be one of {', '.join(states)}")])
    return value.strip().lower()


def _item(value: str | None) -> str | None:
    return check_item_id(value) if value else None


class ExportController(Controller):
    path = "/api/v1/inventory"
    tags = ["queries"]
    guards = [requires(Role.VIEWER)]

    @get(
        "/items.csv",
        summary="The item list as CSV (long, wide or a count sheet), streamed",
        description=(
            "Live items in SKU order, with the list's filters (q, location). layout=long: one row per item and "
            f"location ({', '.join(LONG_COLUMNS)}); an item stocked nowhere has one row without a location, "
            "unless location= narrows the export (then only what is stocked there). layout=wide: one row per item, "
            "a column per location (the configured ones, or those asked with location=) holding the units on hand "
            "(empty: no level there), then the totals of those columns and the threshold in force. layout=counts: "
            f"a count sheet ({', '.join(COUNT_COLUMNS)}; counted empty) to fill in and upload as a counts import. "
            "Text cells a spreadsheet would run as a formula get a leading apostrophe."
        ),
        responses=CSV_RESPONSES,
        media_type="text/csv",
    )
    async def items_csv(
        self,
        reader: NamedDependency[InventoryReader],
        settings: NamedDependency[Settings],
        layout: Annotated[str, Parameter(description=f"one of {', '.join(LAYOUTS)}")] = "long",
        q: Annotated[str | None, Parameter(description="matches sku or name (substring)")] = None,
        location: Annotated[
            list[str] | None,
            Parameter(description="only these locations: repeat the parameter or separate codes with commas"),
        ] = None,
        bom: Annotated[bool, BOM_PARAMETER] = False,
    ) -> Stream:
        if layout not in LAYOUTS:
            raise InvalidCommand([FieldError("layout", f"must be one of {', '.join(LAYOUTS)}")])
        if q is not None and len(q) > MAX_QUERY_LENGTH:
            raise InvalidCommand([FieldError("q", f"must be at most {MAX_QUERY_LENGTH} characters")])
        locations = check_locations(location, settings)
        chunks = item_chunks(
            reader,
            layout=layout,
            q=(q or "").strip() or None,
            locations=locations,
            all_locations=settings.locations,
            default_threshold=settings.low_stock_threshold,
            bom=bom,
        )
        name = "count-sheet" if layout == "counts" else f"items-{layout}"
        return await attachment(chunks, file_name(name, *(locations or [])[:3]))

    @get(
        "/items/{item_id:str}/history.csv",
        summary="An item's history as CSV, newest first, streamed",
        description=f"Every applied change of the item (columns: {', '.join(HISTORY_COLUMNS)}); a deleted item's too.",
        responses={**CSV_RESPONSES, 404: ResponseSpec(ErrorBody, description="No such item")},
        media_type="text/csv",
    )
    async def history_csv(
        self,
        item_id: FromPath[str],
        reader: NamedDependency[InventoryReader],
        bom: Annotated[bool, BOM_PARAMETER] = False,
    ) -> Stream:
        item = await reader.item(check_item_id(item_id))
        if item is None:
            raise ApiError(404, "no such item", details={"item": item_id})
        return await attachment(history_chunks(reader, item.id, bom), file_name("history", item.sku))

    @get(
        "/transfers.csv",
        summary="Transfers as CSV (the filters of /transfers), newest first, streamed",
        description=f"Columns: {', '.join(TRANSFER_COLUMNS)}.",
        responses=CSV_RESPONSES,
        media_type="text/csv",
    )
    async def transfers_csv(
        self,
        reader: NamedDependency[InventoryReader],
        settings: NamedDependency[Settings],
        item_id: Annotated[str | None, Parameter(description="one item's transfers")] = None,
        location: Annotated[str | None, Parameter(description="transfers from or to this location")] = None,
        in_state: Annotated[
            str | None, QueryParameter(name="state", description=f"one of {', '.join(TRANSFER_STATES)}")
        ] = None,
        bom: Annotated[bool, BOM_PARAMETER] = False,
    ) -> Stream:
        code = check_location(location, settings)
        state = _state(in_state, TRANSFER_STATES)
        chunks = transfer_chunks(reader, item_id=_item(item_id), location=code, state=state, bom=bom)
        return await attachment(chunks, file_name("transfers", code, state))

    @get(
        "/reservations.csv",
        summary="Reservations as CSV (the filters of /reservations), newest first, streamed",
        description=f"Columns: {', '.join(RESERVATION_COLUMNS)}.",
        responses=CSV_RESPONSES,
        media_type="text/csv",
    )
    async def reservations_csv(
        self,
        reader: NamedDependency[InventoryReader],
        settings: NamedDependency[Settings],
        item_id: Annotated[str | None, Parameter(description="one item's reservations")] = None,
        location: Annotated[str | None, Parameter(description="reservations at this location")] = None,
        reference: Annotated[str | None, Parameter(description="an order or cart id")] = None,
        in_state: Annotated[
            str | None, QueryParameter(name="state", description=f"one of {', '.join(RESERVATION_STATES)}")
        ] = None,
        bom: Annotated[bool, BOM_PARAMETER] = False,
    ) -> Stream:
        if reference is not None and len(reference) > REFERENCE_MAX:
            raise InvalidCommand([FieldError("reference", f"must be at most {REFERENCE_MAX} characters")])
        code = check_location(location, settings)
        state = _state(in_state, RESERVATION_STATES)
        chunks = reservation_chunks(
            reader,
            item_id=_item(item_id),
            location=code,
            reference=(reference or "").strip() or None,
            state=state,
            bom=bom,
        )
        return await attachment(chunks, file_name("reservations", code, state))
