"""HTTP entrypoints of CSV imports (command service; managers and admins): upload a file for a
preview, confirm it, follow it, list its rows and download its report. Thin: the rules are in
app/domain/imports.py, the work in app/imports/service.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, Parameter
from litestar.response import Stream

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain.imports import ERRORS_IN_ANSWER, ROW_STATUSES, FileRefused, Kind, Progress
from app.domain.rules import normalise_uuid
from app.http.auth import requires
from app.http.errors import ApiError, ErrorBody
from app.imports.report import report_lines
from app.imports.service import ImportConflict, ImportNotFound, ImportService
from app.imports.store import ImportRecord, StoredRow

IMPORTS_PATH = "/api/v1/imports"
ROWS_PAGE = 100
ROWS_PAGE_MAX = 1000


class ImportUpload(msgspec.Struct):
    kind: Annotated[Kind, msgspec.Meta(description="what the file holds (the columns it needs)")]
    file: Annotated[UploadFile, msgspec.Meta(description="the CSV file (UTF-8, header row required)")]


class RowProblem(msgspec.Struct):
    row: int
    column: str
    message: str


class ImportView(msgspec.Struct):
    """An import and how far it is. ``submitted`` counts rows sent as commands whose outcome is
    not known yet."""

    id: str
    kind: str
    state: Annotated[str, msgspec.Meta(description="previewed, running, done or failed")]
    filename: str
    sha256: str
    created_at: str
    rows: int
    valid_rows: int
    error_rows: int
    pending: int
    submitted: int
    applied: int
    rejected: int
    status_url: str
    rows_url: str
    report_url: str
    confirmed_at: str | None = None
    finished_at: str | None = None
    errors: list[RowProblem] | None = None


class ImportRow(msgspec.Struct):
    row: int
    status: Annotated[str, msgspec.Meta(description="error, valid, submitted, applied or rejected")]
    cells: dict[str, str]
    errors: list[RowProblem]
    command_id: str | None = None
    reason: str | None = None


class ImportRows(msgspec.Struct):
    rows: list[ImportRow]
    total: int
    # Pass as ``after`` for the next page; None on the last one.
    next_after: int | None = None


def import_view(record: ImportRecord, progress: Progress, errors: list[RowProblem] | None = None) -> ImportView:
    base = f"{IMPORTS_PATH}/{record.id}"
    return ImportView(
        id=record.id,
        kind=record.kind,
        state=record.state,
        filename=record.filename,
        sha256=record.sha256,
        created_at=record.created_at,
        rows=progress.rows,
        valid_rows=progress.valid_rows,
        error_rows=progress.error,
        pending=progress.pending,
        submitted=progress.submitted,
        applied=progress.applied,
        rejected=progress.rejected,
        status_url=base,
        rows_url=f"{base}/rows",
        report_url=f"{base}/report.csv",
        confirmed_at=record.confirmed_at,
        finished_at=record.finished_at,
        errors=errors,
    )


def row_view(row: StoredRow) -> ImportRow:
    return ImportRow(
        row=row.row,
        status=row.status,
        cells=row.cells,
        errors=[RowProblem(e.row, e.column, e.message) for e in row.errors],
        command_id=row.command_id,
        reason=row.reason,
    )


def refused_file(exc: FileRefused) -> ApiError:
    if exc.message.startswith("the file is larger than"):
        return ApiError(413, exc.message)
    details = [{"field": exc.column or "file", "message": exc.message}]
    if exc.row is not None:
        details[0]["row"] = str(exc.row)
    return ApiError(400, exc.message, details=details)


def import_id_of(raw: str) -> str:
    found = normalise_uuid(raw)
    if found is None:
        raise ApiError(404, "no such import", details={"import_id": raw})
    return found


async def first_errors(imports: ImportService, import_id: str) -> list[RowProblem]:
    errors: list[RowProblem] = []
    for row in await imports.store.rows(import_id, status="error", limit=ERRORS_IN_ANSWER):
        errors.extend(RowProblem(e.row, e.column, e.message) for e in row.errors)
    return errors[:ERRORS_IN_ANSWER]


async def upload_bytes(upload: UploadFile, max_bytes: int) -> bytes:
    """The file, refused with a 413 when it is over the import limit."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ApiError(
            413,
            f"the file is larger than {max_bytes} bytes: split it into smaller files",
            details={"max_bytes": max_bytes},
        )
    return data


async def load(imports: ImportService, import_id: str, principal: Principal) -> ImportRecord:
    try:
        return await imports.get(import_id_of(import_id), principal)
    except ImportNotFound:
        raise ApiError(404, "no such import", details={"import_id": import_id}) from None


ERRORS = {
    400: ResponseSpec(ErrorBody, description="The file cannot be imported (empty, not UTF-8, wrong columns...)"),
    401: ResponseSpec(ErrorBody, description="Missing, expired or invalid token"),
    403: ResponseSpec(ErrorBody, description="Managers and admins import"),
    404: ResponseSpec(ErrorBody, description="No such import (or not yours)"),
}


class ImportController(Controller):
    path = IMPORTS_PATH
    tags = ["imports"]
    guards = [requires(Role.MANAGER)]

    @post(
        "",
        status_code=201,
        # The app-wide body limit is for JSON; the upload's own is INVENTORY_IMPORT_MAX_BYTES,
        # enforced in front of the app (app/http/json_guard.py) and again on the file.
        request_max_body_size=None,
        summary="Upload a CSV file: every row is checked, nothing is applied (a preview)",
        description=(
            "Multipart form with `kind` (counts, adjustments, transfers, items) and `file`. Answers the "
            f"preview: row counts and the first {ERRORS_IN_ANSWER} row errors (all of them under `rows_url`). "
            "Confirm it to apply the valid rows."
        ),
        responses={
            **ERRORS,
            413: ResponseSpec(ErrorBody, description="The file is over INVENTORY_IMPORT_MAX_BYTES; nothing kept"),
        },
    )
    async def upload(
        self,
        request: Request[Principal, Any, Any],
        data: Annotated[ImportUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        imports: NamedDependency[ImportService],
    ) -> ImportView:
        content = await upload_bytes(data.file, imports.limits.max_bytes)
        try:
            record = await imports.preview(content, data.kind, data.file.filename or "", request.user)
        except FileRefused as exc:
            raise refused_file(exc) from None
        return import_view(record, await imports.store.progress(record.id), await first_errors(imports, record.id))

    @post(
        "/{import_id:str}/confirm",
        status_code=202,
        summary="Apply the valid rows of a previewed import",
        description="Each valid row becomes a command (its idempotency key derived from the file and the row).",
        responses={**ERRORS, 409: ResponseSpec(ErrorBody, description="Not previewed, or nothing valid")},
    )
    async def confirm(
        self,
        request: Request[Principal, Any, Any],
        import_id: FromPath[str],
        imports: NamedDependency[ImportService],
    ) -> ImportView:
        record = await load(imports, import_id, request.user)
        try:
            record = await imports.confirm(record.id, request.user)
        except ImportConflict as exc:
            raise ApiError(409, exc.message, details={"import_id": record.id, "state": record.state}) from None
        return import_view(record, await imports.store.progress(record.id))

    @get("/{import_id:str}", summary="An import and its progress", responses=ERRORS)
    async def status(
        self,
        request: Request[Principal, Any, Any],
        import_id: FromPath[str],
        imports: NamedDependency[ImportService],
    ) -> ImportView:
        record = await load(imports, import_id, request.user)
        return import_view(record, await imports.store.progress(record.id))

    @get(
        "/{import_id:str}/rows",
        summary="An import's rows, in file order, paged",
        description="`?status=error|valid|submitted|applied|rejected` lists only rows in that status; "
        "`after` (the previous page's `next_after`) pages on.",
        responses=ERRORS,
    )
    async def rows(
        self,
        request: Request[Principal, Any, Any],
        import_id: FromPath[str],
        imports: NamedDependency[ImportService],
        after: Annotated[int, Parameter(query="after", ge=0, description="rows after this row number")] = 0,
        limit: Annotated[int, Parameter(query="limit", ge=1, le=ROWS_PAGE_MAX)] = ROWS_PAGE,
    ) -> ImportRows:
        record = await load(imports, import_id, request.user)
        # Read by hand: ``status`` is the name of an app-wide dependency (the command status).
        status = request.query_params.get("status") or None
        if status is not None and status not in ROW_STATUSES:
            raise ApiError(
                400,
                "the request is invalid",
                details=[{"field": "status", "message": f"must be one of: {', '.join(ROW_STATUSES)}"}],
            )
        found = await imports.store.rows(record.id, status=status, after=after, limit=limit + 1)
        return ImportRows(
            rows=[row_view(row) for row in found[:limit]],
            total=await imports.store.count(record.id, status),
            next_after=found[limit - 1].row if len(found) > limit else None,
        )

    @get(
        "/{import_id:str}/report.csv",
        summary="The import's report: every row, its status, reason and command, and its cells",
        responses=ERRORS,
        media_type="text/csv",
    )
    async def report(
        self,
        request: Request[Principal, Any, Any],
        import_id: FromPath[str],
        imports: NamedDependency[ImportService],
    ) -> Stream:
        record = await load(imports, import_id, request.user)

        async def lines() -> AsyncIterator[bytes]:
            async for line in report_lines(imports.store, record):
                yield line

        return Stream(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="import-{record.id[:8]}-report.csv"'},
        )
