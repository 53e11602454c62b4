"""The import pages (/imports): upload a CSV file, see every row checked, confirm, watch the
progress bar move live, download the report.

Pages and their live progress come from the query service, which reads imports.db read-only;
the upload and the confirm are forms posted to the command service (``command_base``), which
owns the file, as every other form. Its answer sends the browser to the import's page
(``HX-Redirect``, a path: it opens on the service that served the page).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage, Template

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain.imports import KINDS, LAYOUTS, MAX_COLUMNS, FileRefused
from app.domain.rules import normalise_uuid
from app.http.auth import requires
from app.imports.service import ImportConflict, ImportNotFound, ImportService, may_see
from app.imports.store import ImportRecord, ImportStore
from app.settings import Settings
from app.web.context import page_context, site_context

IMPORT_FORM_PATH = "/ui/imports"
ROWS_PER_PAGE = 100
PROGRESS_SECONDS = 0.5
KIND_LABELS = {
    "counts": "Stock counts",
    "adjustments": "Adjustments (with reasons)",
    "transfers": "Transfers",
    "items": "New items",
}


def _layouts() -> list[dict[str, Any]]:
    return [
        {
            "kind": kind,
            "label": KIND_LABELS[kind],
            "required": LAYOUTS[kind].required,
            "optional": LAYOUTS[kind].optional,
            "ignored": LAYOUTS[kind].ignored,
        }
        for kind in KINDS
    ]


def _limits(settings: Settings) -> dict[str, Any]:
    return {
        "max_mib": round(settings.import_max_bytes / (1024 * 1024), 1),
        "max_rows": settings.import_max_rows,
        "max_columns": MAX_COLUMNS,
    }


async def _own(store: ImportStore, import_id: str, user: Principal) -> ImportRecord | None:
    found = normalise_uuid(import_id)
    record = await store.get(found) if found else None
    return record if record is not None and may_see(record, user) else None


def _answer(
    request: Request[Any, Any, Any], settings: Settings, status: int, message: str, **extra: Any
) -> Response[Any]:
    template = request.app.template_engine.get_template("partials/import_answer.html")  # type: ignore[union-attr]
    body = template.render(message=message, **site_context(settings))
    return Response(body, status_code=status, media_type="text/html")


class ImportPageController(Controller):
    """The pages (query service)."""

    path = "/"
    guards = [requires(Role.MANAGER)]
    include_in_schema = False

    @get("/imports")
    async def imports_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        import_store: NamedDependency[ImportStore],
    ) -> Template:
        user = request.user
        recent = await import_store.recent(username=None if user.can(Role.ADMIN) else user.username)
        context = page_context(
            request,
            settings,
            nav="imports",
            layouts=_layouts(),
            limits=_limits(settings),
            recent=[(record, await import_store.progress(record.id)) for record in recent],
            kind_labels=KIND_LABELS,
        )
        return Template("imports.html", context=context)

    @get("/imports/{import_id:str}")
    async def import_page(
        self,
        request: Request[Principal, Any, Any],
        import_id: FromPath[str],
        settings: NamedDependency[Settings],
        import_store: NamedDependency[ImportStore],
    ) -> Template | Response[Any]:
        record = await _own(import_store, import_id, request.user)
        if record is None:
            return Response("no such import", status_code=404, media_type="text/plain")
        params = request.query_params
        show = "error" if params.get("show") == "error" else None
        try:
            after = max(0, int(params.get("after") or "0"))
        except ValueError:
            after = 0
        rows = await import_store.rows(record.id, status=show, after=after, limit=ROWS_PER_PAGE + 1)
        progress = await import_store.progress(record.id)
        context = page_context(
            request,
            settings,
            nav="imports",
            record=record,
            progress=progress,
            rows=rows[:ROWS_PER_PAGE],
            columns=[name for name in record.columns if name in LAYOUTS[record.kind].columns],  # type: ignore[index]
            show=show,
            after=after,
            next_after=rows[ROWS_PER_PAGE - 1].row if len(rows) > ROWS_PER_PAGE else None,
            shown_total=progress.error if show else progress.rows,
            kind_labels=KIND_LABELS,
        )
        return Template("import.html", context=context)

    @get("/ui/imports/{import_id:str}/progress")
    async def import_progress(
        self,
        request: Request[Principal, Any, Any],
        import_id: FromPath[str],
        settings: NamedDependency[Settings],
        import_store: NamedDependency[ImportStore],
    ) -> ServerSentEvent | Response[Any]:
        record = await _own(import_store, import_id, request.user)
        if record is None:
            return Response("no such import", status_code=404, media_type="text/plain")
        engine = request.app.template_engine
        assert engine is not None
        context = site_context(settings)

        async def updates() -> AsyncGenerator[ServerSentEventMessage, None]:
            last = None
            while True:
                current = await import_store.get(record.id)
                progress = await import_store.progress(record.id)
                if current is None:
                    return
                if current.state in ("done", "failed"):
                    html = engine.get_template("partials/import_result.html").render(
                        record=current, progress=progress, oob=True, **context
                    )
                    yield ServerSentEventMessage(data=html, event="done")
                    return
                if progress != last:
                    html = engine.get_template("partials/import_progress.html").render(
                        record=current, progress=progress, **context
                    )
                    yield ServerSentEventMessage(data=html, event="progress")
                    last = progress
                await asyncio.sleep(PROGRESS_SECONDS)

        return ServerSentEvent(updates())


class ImportFormController(Controller):
    """The forms (command service): upload and confirm."""

    path = IMPORT_FORM_PATH
    guards = [requires(Role.MANAGER)]
    include_in_schema = False

    @post("", request_max_body_size=None)
    async def upload_form(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        imports: NamedDependency[ImportService],
    ) -> Response[Any]:
        form = await request.form()
        upload = form.get("file")
        kind = str(form.get("kind") or "").strip().lower()
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _answer(request, settings, 400, "Choose a CSV file to upload.")
        data = await upload.read(imports.limits.max_bytes + 1)
        if len(data) > imports.limits.max_bytes:
            return _answer(request, settings, 413, f"The file is larger than {_limits(settings)['max_mib']} MiB.")
        try:
            record = await imports.preview(data, kind, upload.filename, request.user)
        except FileRefused as exc:
            where = f" (row {exc.row})" if exc.row else ""
            return _answer(request, settings, 400, f"The file cannot be imported{where}: {exc.message}.")
        return Response("", status_code=200, media_type="text/html", headers={"HX-Redirect": f"/imports/{record.id}"})

    @post("/{import_id:str}/confirm")
    async def confirm_form(
        self,
        request: Request[Principal, Any, Any],
        import_id: FromPath[str],
        settings: NamedDependency[Settings],
        imports: NamedDependency[ImportService],
    ) -> Response[Any]:
        found = normalise_uuid(import_id) or ""
        try:
            record = await imports.confirm(found, request.user)
        except ImportNotFound:
            return _answer(request, settings, 404, "No such import.")
        except ImportConflict as exc:
            return _answer(request, settings, 409, exc.message[:1].upper() + exc.message[1:] + ".")
        return Response("", status_code=200, media_type="text/html", headers={"HX-Redirect": f"/imports/{record.id}"})
