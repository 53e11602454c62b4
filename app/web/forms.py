"""Commands from the pages' forms (served by the command service): one form route per command of
the catalogue (app/domain/catalogue), made by ``form_routes``.

Same rules, the same CommandService and the same typed result as the JSON API; the answers are
HTML for htmx: a badge for the command (pending, or why it was refused) and the field errors
next to their fields.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Template

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.commands.deadletters import DeadLetterNotFound, DeadLetterReplayer
from app.commands.edge import LOG_UNAVAILABLE, refusal_error
from app.commands.errors import CommandRefused
from app.commands.scoping import ensure_in_scope
from app.commands.service import Accepted, AnsweredBefore, CommandService, Submission, request_fingerprint
from app.domain.catalogue import PUBLIC_COMMANDS, CommandSpec, InvalidCommand, check_item_id
from app.domain.model import CHOSEN_REASONS
from app.eventlog.base import LogUnavailable
from app.http.auth import requires
from app.http.errors import ApiError
from app.http.request_id import request_id_of
from app.settings import Settings
from app.web.context import site_context
from app.web.labels import command_label

Form = dict[str, str]
FORMS_PATH = "/ui"


# The number a person reads first in a command's badge: "Count 37 · MUG", "Receive 8 · MUG".
AMOUNT_FIELDS = ("quantity", "counted", "received")
# "Expires in" on the reserve form is a number and a unit; the command takes seconds.
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
# When to try again after the event log could not take a command (seconds; said in the answer too).
RETRY_AFTER = 2
REMOVING_REASONS = {reason.value for reason, way in CHOSEN_REASONS.items() if way == -1}


def _label(spec: CommandSpec, form: Form, item_id: str | None) -> str:
    what = form.get("sku", "").strip() if spec.creates_item else (form.get("label") or (item_id or "")[:8])
    quantity = next((form[name] for name in AMOUNT_FIELDS if name in spec.fields and name in form), "").strip()
    # A stock command's amount is what a person reads first; a new item's stock is not news.
    amount = int(quantity) if quantity.lstrip("-").isdigit() and not spec.creates_item else None
    return command_label(spec.event_type, what, amount)


async def _answer_form(
    spec: CommandSpec,
    request: Request[Principal, Any, Any],
    service: CommandService,
    settings: Settings,
    item_id: str | None,
) -> Response[Any]:
    form = _as_the_command_reads_it(spec, await _form(request))
    form_id = form.get("form_id", spec.name)[:80]
    label = _label(spec, form, item_id)
    context = {"form_id": form_id, "fields": spec.form_fields, "label": label, **site_context(settings)}
    try:
        target = str(uuid.uuid4()) if item_id is None else check_item_id(item_id)
        command = spec.check_form(form, item_id=target, places=service.places)
        await ensure_in_scope(service, request.user, command)
        body = json.dumps(form, sort_keys=True).encode()
        result = await service.submit(
            Submission(
                command=command,
                actor=request.user.username,
                request_id=request_id_of(request.scope),
                request_hash=request_fingerprint(request.method, request.url.path, body, None),
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
    except CommandRefused as exc:
        error = refusal_error(exc)
        return Template(
            "partials/form_answer.html",
            status_code=error.status,
            context={**context, "status": "rejected", "reason": exc.reason, "message": exc.message, "errors": {}},
        )
    except LogUnavailable:
        return Template(
            "partials/form_answer.html",
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER)},
            context={
                **context,
                "status": "error",
                "reason": None,
                "message": LOG_UNAVAILABLE,
                "errors": {},
                "retry_after": RETRY_AFTER,
            },
        )
    # A form never waits and has no key: the result is always "accepted".
    assert isinstance(result, Accepted) and not isinstance(result, AnsweredBefore)
    return Template(
        "partials/form_answer.html",
        status_code=202,
        context={**context, "status": "pending", "command_id": result.command_id, "errors": {}},
    )


def _form_route(spec: CommandSpec) -> HTTPRouteHandler:
    if spec.creates_item:

        async def create(
            request: Request[Principal, Any, Any],
            service: NamedDependency[CommandService],
            settings: NamedDependency[Settings],
        ) -> Response[Any]:
            return await _answer_form(spec, request, service, settings, None)

        handler: Any = create
    else:

        async def on_item(
            request: Request[Principal, Any, Any],
            item_id: FromPath[str],
            service: NamedDependency[CommandService],
            settings: NamedDependency[Settings],
        ) -> Response[Any]:
            return await _answer_form(spec, request, service, settings, item_id)

        handler = on_item
    handler.__name__ = handler.__qualname__ = f"form_{spec.name}"
    return post(FORMS_PATH + spec.form_path, guards=[requires(spec.role)], include_in_schema=False)(handler)


def form_routes() -> list[HTTPRouteHandler]:
    """One form route per command of the catalogue."""
    return [_form_route(spec) for spec in PUBLIC_COMMANDS]


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


def _as_the_command_reads_it(spec: CommandSpec, form: Form) -> Form:
    """What a page's form says in a person's terms, in the command's: an expiry in minutes as
    seconds, and an adjustment's units signed by its reason ("sold", 2 removes 2). A number with
    a sign of its own is taken as it is, so the command's rule still refuses "sold, +2"."""
    form = dict(form)
    unit = form.pop("expires_unit", "seconds")
    raw = form.get("expires_in", "").strip()
    if "expires_in" in spec.fields and unit in UNIT_SECONDS and raw.isdigit():
        form["expires_in"] = str(int(raw) * UNIT_SECONDS[unit])
    reason = form.get("reason", "").strip().lower()
    quantity = form.get("quantity", "").strip()
    if spec.name == "adjust" and quantity.isdigit() and reason in REMOVING_REASONS:
        form["quantity"] = f"-{quantity}"
    return form


async def _form(request: Request[Any, Any, Any]) -> Form:
    data = await request.form()
    return {key: str(value)[:4000] for key, value in data.items() if key != "_csrf_token"}
