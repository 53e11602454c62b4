"""HTTP entrypoints of the audit log: who did what across the chain, as JSON pages and as CSV.

The CSV is streamed: rows are read in keyset batches (app/queries/service.py audit_batches) and
written as they come, so an export of a million rows holds one batch in memory and never blocks
the event loop for longer than one batch's read.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from app.auth.roles import Role
from app.domain import csvtext
from app.domain.audit import (
    CSV_COLUMNS,
    KINDS,
    AuditEntry,
    AuditFilters,
    BadCursor,
    Cursor,
    csv_row,
    decode_cursor,
    parse_filters,
)
from app.domain.catalogue import FieldError, InvalidCommand
from app.http.auth import requires
from app.http.errors import ErrorBody
from app.queries.controllers import MAX_PAGE_SIZE
from app.queries.service import QueryService
from app.settings import Settings

EXPORT_BATCH = 1000
FILE_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
FILTER_DOCS = {
    "actor": "only what this user did (their username)",
    "item": "only this item: its SKU, or its id",
    "location": "only at this location",
    "reason": "only with this reason: an adjustment's (damaged, theft...) or a rejection's (insufficient_stock...)",
    "event_type": "only this kind of event: adjusted, counted, transfer_shipped... or the full event type",
    "kind": f"only {' or '.join(KINDS)} entries",
}


class AuditPageBody(msgspec.Struct):
    entries: list[AuditEntry]
    # Pass as ``cursor`` for the next (older) page; null on the last one.
    next_cursor: str | None


def filters_of(params: Mapping[str, str | None], settings: Settings) -> AuditFilters:
    return parse_filters(params, settings.locations)


def cursor_of(text: str | None) -> Cursor:
    try:
        return decode_cursor(text)
    except BadCursor:
        raise InvalidCommand([FieldError("cursor", "not a cursor this service gave")]) from None


async def csv_chunks(queries: QueryService, filters: AuditFilters, bom: bool = False) -> AsyncIterator[str]:
    """The log as CSV text (app/domain/csvtext.py, as every export), a header then one chunk per batch read."""
    yield csvtext.header(CSV_COLUMNS, bom=bom)
    async for batch in queries.audit_batches(filters, EXPORT_BATCH):
        yield csvtext.lines(csv_row(entry) for entry in batch)


def csv_response(queries: QueryService, filters: AuditFilters, bom: bool = False) -> Stream:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    narrowed = "-".join(value for value in (filters.location, filters.actor) if value)
    # A header is Latin-1 and a user name may be anything: the file name keeps plain characters.
    name = FILE_NAME_UNSAFE.sub("_", f"audit-{narrowed + '-' if narrowed else ''}{stamp}.csv")
    return Stream(
        csv_chunks(queries, filters, bom),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


def _params(**values: str | None) -> dict[str, str | None]:
    return values


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["queries"]
    guards = [requires(Role.VIEWER)]

    @get(
        "/",
        summary="The audit log: applied changes and rejected commands, newest first, filtered",
        description=(
            "Who did what across the chain. Each entry is an applied change (kind applied: its deltas, what "
            "they left, reason, note, reference) or a rejected command (kind rejected: why). Items are named "
            "by SKU and name. Pages are keyset pages: pass next_cursor as cursor for the next (older) page."
        ),
        responses={400: ResponseSpec(ErrorBody)},
    )
    async def audit(
        self,
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        actor: Annotated[str | None, Parameter(description=FILTER_DOCS["actor"])] = None,
        item: Annotated[str | None, Parameter(description=FILTER_DOCS["item"])] = None,
        location: Annotated[str | None, Parameter(description=FILTER_DOCS["location"])] = None,
        reason: Annotated[str | None, Parameter(description=FILTER_DOCS["reason"])] = None,
        event_type: Annotated[str | None, Parameter(description=FILTER_DOCS["event_type"])] = None,
        kind: Annotated[str | None, Parameter(description=FILTER_DOCS["kind"])] = None,
        cursor: Annotated[str | None, Parameter(description="next_cursor of the previous page")] = None,
        page_size: Annotated[int, Parameter(description=f"1-{MAX_PAGE_SIZE}, clamped")] = 50,
    ) -> AuditPageBody:
        params = _params(actor=actor, item=item, location=location, reason=reason, event_type=event_type, kind=kind)
        filters = filters_of(params, settings)
        found = await queries.audit_page(filters, cursor_of(cursor), max(1, min(page_size, MAX_PAGE_SIZE)))
        return AuditPageBody(found.entries, found.next_cursor.encode() if found.next_cursor else None)


@get(
    "/api/v1/audit.csv",
    guards=[requires(Role.VIEWER)],
    tags=["queries"],
    summary="The audit log as CSV (the filters of /api/v1/audit), streamed",
    description=(
        "Every matching entry, newest first, as a CSV attachment (columns: " + ", ".join(CSV_COLUMNS) + "). "
        "Streamed in batches, so a log of any size is exported without holding it in memory. Text cells a "
        "spreadsheet would run as a formula (starting with = + - @, tab or carriage return) are prefixed "
        "with an apostrophe."
    ),
    responses={200: ResponseSpec(str, media_type="text/csv", description="CSV"), 400: ResponseSpec(ErrorBody)},
    media_type="text/csv",
)
async def audit_csv(
    queries: NamedDependency[QueryService],
    settings: NamedDependency[Settings],
    actor: Annotated[str | None, Parameter(description=FILTER_DOCS["actor"])] = None,
    item: Annotated[str | None, Parameter(description=FILTER_DOCS["item"])] = None,
    location: Annotated[str | None, Parameter(description=FILTER_DOCS["location"])] = None,
    reason: Annotated[str | None, Parameter(description=FILTER_DOCS["reason"])] = None,
    event_type: Annotated[str | None, Parameter(description=FILTER_DOCS["event_type"])] = None,
    kind: Annotated[str | None, Parameter(description=FILTER_DOCS["kind"])] = None,
    bom: Annotated[bool, Parameter(description="true: start with a UTF-8 byte order mark (for spreadsheets)")] = False,
) -> Stream:
    params = _params(actor=actor, item=item, location=location, reason=reason, event_type=event_type, kind=kind)
    return csv_response(queries, filters_of(params, settings), bom)
