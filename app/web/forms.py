"""Commands from the pages' forms (served by the command service).

Same rules and the same CommandService as the JSON API; the answers are HTML for htmx: a badge
for the command (pending, or why it was refused) and the field errors next to their fields.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.commands.deadletters import DeadLetterNotFound, DeadLetterReplayer
from app.commands.service import CommandService, Submission, request_fingerprint
from app.domain import commands as checks
from app.domain.commands import CommandRequest, FieldError, InvalidCommand
from app.domain.events import EventType
from app.eventlog.base import LogUnavailable
from app.http.auth import requires
from app.http.errors import ApiError
from app.http.request_id import request_id_of
from app.settings import Settings
from app.web.context import site_context
from app.web.labels import command_label

STOCK_ACTIONS = {
    "adjust": EventType.STOCK_ADJUSTED,
    "reserve": EventType.STOCK_RESERVED,
    "release": EventType.STOCK_RELEASED,
}
FORM_FIELDS = {
    "create": ("sku", "name", "description", "quantity", "location", "low_stock_threshold"),
    "edit": ("name", "description", "low_stock_threshold"),
    "stock": ("quantity", "location"),
    "delete": (),
}

Form = dict[str, str]


def _integer(form: Form, field: str, errors: list[FieldError], *, default: int | None = None) -> int | None:
    raw = form.get(field, "").strip()
    if raw == "":
        if default is None:
            return None
        return default
    try:
        return int(raw)
    except ValueError:
        errors.append(FieldError(field, "must be a whole number"))
        return default


def _with_parse_errors(errors: list[FieldError], build: Callable[[], CommandRequest]) -> CommandRequest:
    """Run the domain checks and report their errors together with the form's own."""
    try:
        command = build()
    except InvalidCommand as exc:
        seen = {e.field for e in errors}
        raise InvalidCommand(errors + [e for e in exc.errors if e.field not in seen]) from None
    if errors:
        raise InvalidCommand(errors)
    return command


class FormCommandController(Controller):
    path = "/ui"
    include_in_schema = False

    async def _answer(
        self,
        request: Request[Principal, Any, Any],
        service: CommandService,
        settings: Settings,
        *,
        form: Form,
        form_kind: str,
        label: str,
        build: Callable[[], CommandRequest],
        precheck: Callable[[], Awaitable[None]] | None,
        errors: list[FieldError] | None = None,
    ) -> Response[Any]:
        """Check the command (``errors``: what the form's own parsing found), submit it, answer."""
        form_id = form.get("form_id", form_kind)[:80]
        context = {"form_id": form_id, "fields": FORM_FIELDS[form_kind], "label": label, **site_context(settings)}
        try:
            command = _with_parse_errors(errors or [], build)
            body = json.dumps(form, sort_keys=True).encode()
            reply = await service.submit(
                Submission(
                    command=command,
                    actor=request.user.username,
                    request_id=request_id_of(request.scope),
                    request_hash=request_fingerprint(request.method, request.url.path, body, None),
                    precheck=precheck,
                )
            )
        except InvalidCommand as exc:
            by_field = {e.field: e.message for e in exc.errors}
            summary = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
            return Template(
                "partials/form_answer.html",
                status_code=400,
                context={**context, "status": "invalid", "errors": by_field, "message": summary},
            )
        except ApiError as exc:
            reason = exc.details.get("reason") if isinstance(exc.details, dict) else None
            status = "rejected" if reason else "error"
            return Template(
                "partials/form_answer.html",
                status_code=exc.status,
                headers=exc.headers,
                context={**context, "status": status, "reason": reason, "message": exc.message, "errors": {}},
            )
        accepted = json.loads(reply.body)
        return Template(
            "partials/form_answer.html",
            status_code=reply.status,
            context={**context, "status": "pending", "command_id": accepted["command_id"], "errors": {}},
        )

    @post("/items", guards=[requires(Role.MANAGER)])
    async def create_item(
        self,
        request: Request[Principal, Any, Any],
        service: NamedDependency[CommandService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        form = await _form(request)
        errors: list[FieldError] = []
        quantity = _integer(form, "quantity", errors, default=0)
        threshold = _integer(form, "low_stock_threshold", errors)
        sku = form.get("sku", "").strip()

        return await self._answer(
            request, service, settings, form=form, form_kind="create", label=command_label(EventType.ITEM_CREATED, sku),
            errors=errors, precheck=lambda: service.ensure_sku_free(sku),
            build=lambda: checks.create_item(
                item_id=str(uuid.uuid4()), sku=form.get("sku"), name=form.get("name"),
                description=form.get("description"), quantity=quantity or 0, location=form.get("location"),
                locations=settings.locations, default_location=settings.default_location,
                low_stock_threshold=threshold,
            ),
        )  # fmt: skip

    @post("/items/{item_id:str}/edit", guards=[requires(Role.MANAGER)])
    async def edit_item(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        service: NamedDependency[CommandService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        form = await _form(request)
        errors: list[FieldError] = []
        threshold = _integer(form, "low_stock_threshold", errors)
        item_id = checks.check_item_id(item_id)

        return await self._answer(
            request, service, settings, form=form, form_kind="edit",
            label=command_label(EventType.ITEM_UPDATED, form.get("label") or item_id[:8]), errors=errors,
            precheck=lambda: service.ensure_item_exists(item_id, EventType.ITEM_UPDATED),
            build=lambda: checks.update_item(
                item_id=item_id, name=form.get("name"), description=form.get("description"), expected_version=None,
                default_location=settings.default_location, low_stock_threshold=threshold,
            ),
        )  # fmt: skip

    @post("/items/{item_id:str}/delete", guards=[requires(Role.MANAGER)])
    async def delete_item(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        service: NamedDependency[CommandService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        form = await _form(request)
        item_id = checks.check_item_id(item_id)
        return await self._answer(
            request, service, settings, form=form, form_kind="delete",
            label=command_label(EventType.ITEM_DELETED, form.get("label") or item_id[:8]),
            build=lambda: checks.delete_item(
                item_id=item_id, expected_version=None, default_location=settings.default_location
            ),
            precheck=lambda: service.ensure_item_exists(item_id, EventType.ITEM_DELETED),
        )  # fmt: skip

    @post([f"/items/{{item_id:str}}/{action}" for action in STOCK_ACTIONS], guards=[requires(Role.CLERK)])
    async def move_stock(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        service: NamedDependency[CommandService],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        event_type = STOCK_ACTIONS[request.url.path.rsplit("/", 1)[-1]]
        form = await _form(request)
        errors: list[FieldError] = []
        quantity = _integer(form, "quantity", errors, default=0) or 0
        item_id = checks.check_item_id(item_id)

        def build() -> CommandRequest:
            if event_type is EventType.STOCK_ADJUSTED:
                return checks.adjust_stock(
                    item_id=item_id, quantity=quantity, location=form.get("location"), reason=form.get("reason"),
                    expected_version=None, locations=settings.locations, default_location=settings.default_location,
                )  # fmt: skip
            return checks.move_stock(
                event_type=event_type, item_id=item_id, quantity=quantity, location=form.get("location"),
                expected_version=None, locations=settings.locations, default_location=settings.default_location,
            )  # fmt: skip

        return await self._answer(
            request, service, settings, form=form, form_kind="stock",
            label=command_label(event_type, form.get("label") or item_id[:8], quantity), errors=errors,
            build=build, precheck=lambda: service.ensure_item_exists(item_id, event_type),
        )  # fmt: skip


class DeadLetterFormController(Controller):
    path = "/ui/dead-letters"
    include_in_schema = False
    guards = [requires(Role.ADMIN)]

    @post("/{letter_id:int}/replay")
    async def replay(
        self,
        request: Request[Principal, Any, Any],
        letter_id: FromPath[int],
        replayer: NamedDependency[DeadLetterReplayer],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        label = f"Replay dead letter {letter_id}"
        context = {"form_id": "dlq", "fields": (), "label": label, "errors": {}, **site_context(settings)}
        try:
            await replayer.replay(letter_id, actor=request.user.username)
        except DeadLetterNotFound:
            raise ApiError(404, "no such dead letter") from None
        except LogUnavailable:
            context |= {"status": "error", "message": "the event log is unavailable; retry later"}
            return Template("partials/form_answer.html", status_code=503, context=context)
        context |= {"status": "replayed", "message": "published to its topic again"}
        return Template("partials/form_answer.html", status_code=202, context=context)


async def _form(request: Request[Any, Any, Any]) -> Form:
    data = await request.form()
    return {key: str(value)[:4000] for key, value in data.items() if key != "_csrf_token"}
