"""HTTP entrypoints of the command service: one JSON route per command of the catalogue
(app/domain/catalogue), made by ``command_routes``. Thin: they turn HTTP into a Submission and
hand the typed result to the edge (app/commands/edge.py)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, route
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, HeaderParameter

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.commands.edge import SEQ_HEADER, answer
from app.commands.outcomes import CommandStatus
from app.commands.schemas import CommandAccepted
from app.commands.scoping import ensure_in_scope
from app.commands.service import (
    REQUEST_ID_REPLAY_SECONDS,
    CommandService,
    Submission,
    keyed_ids,
    new_uuid,
    request_fingerprint,
)
from app.domain.catalogue import (
    PUBLIC_COMMANDS,
    CommandRequest,
    CommandSpec,
    FieldError,
    InvalidCommand,
    check_expected_version,
    check_item_id,
)
from app.domain.records import CommandStatusView
from app.domain.rules import normalise_uuid
from app.http.auth import requires
from app.http.errors import ApiError, ErrorBody
from app.http.request_id import client_request_id, request_id_of
from app.settings import IDEMPOTENCY_KEY_SECONDS

ITEMS_PATH = "/api/v1/inventory/items"
PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?", re.IGNORECASE)
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

ERRORS = {
    400: ResponseSpec(ErrorBody, description="Invalid body or parameters, with per-field details"),
    401: ResponseSpec(ErrorBody, description="Missing, expired or invalid token"),
    403: ResponseSpec(
        ErrorBody,
        description="Your role does not allow this command, or you are limited to other locations "
        "(details.reason location_not_allowed or every_location_needed, details.location)",
    ),
    404: ResponseSpec(ErrorBody, description="No such item (or rejected unknown_item after waiting)"),
    409: ResponseSpec(
        ErrorBody,
        description="SKU taken, rejected after waiting (reason in details), or record_not_known_yet "
        "(a location-limited user named a transfer or reservation not in the read model yet: retry)",
    ),
    413: ResponseSpec(ErrorBody, description="Body too large"),
    415: ResponseSpec(ErrorBody, description="Body is not application/json"),
    422: ResponseSpec(ErrorBody, description="Idempotency-Key reused with another request"),
    503: ResponseSpec(ErrorBody, description="The event log is unavailable; nothing was accepted (see Retry-After)"),
}
ACCEPTED = {
    202: ResponseSpec(CommandAccepted, description="Durably in the event log; follow Location for the outcome"),
    **ERRORS,
}
CREATED = {201: ResponseSpec(dict[str, Any], description="Created (Prefer: wait)"), **ACCEPTED}
WAITED = {200: ResponseSpec(dict[str, Any], description="Applied (Prefer: wait): the resulting item"), **ACCEPTED}

PreferHeader = Annotated[
    str | None,
    HeaderParameter(
        name="Prefer",
        description="RFC 7240 'wait=N' (N <= 30 s): answer with the outcome if it comes in time",
    ),
]
IdempotencyHeader = Annotated[
    str | None, HeaderParameter(name="Idempotency-Key", description="repeat-safe key (printable ASCII, 1-255)")
]
IfMatchHeader = Annotated[
    str | None,
    HeaderParameter(name="If-Match", description="the item version the command expects (optimistic lock)"),
]


def wait_seconds(prefer: str | None) -> float:
    if not prefer:
        return 0.0
    match = PREFER_WAIT.search(prefer)
    return min(float(match.group(1)), 30.0) if match else 0.0


def _before(role: Role) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """The role check, then the content type, before the body is parsed: a wrong role is a 403
    and a wrong content type a 415, not a parse error. The role check is the guard's, run here
    because Litestar copies the route handler for every guard it runs, a visible share of a
    command's time."""
    guard = requires(role)

    async def before(request: Request[Any, Any, Any]) -> None:
        checked = guard(request, request.route_handler)
        if checked is not None:
            await checked
        await _ensure_json(request)

    return before


async def _ensure_json(request: Request[Any, Any, Any]) -> None:
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "send the body as application/json", details={"content_type": content_type or None})


def _replay_key(request: Request[Principal, Any, Any], idempotency_key: str | None) -> tuple[str | None, float]:
    """The key a retry of this request is known by, and how long it lives."""
    key = idempotency_key
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InvalidCommand([FieldError("Idempotency-Key", "must be 1-255 printable ASCII characters")])
    if key is None and (sent_id := client_request_id(request.scope)) is not None:
        # Older clients retry with the same X-Request-ID; honour it for five minutes.
        return f"request-id:{sent_id}", REQUEST_ID_REPLAY_SECONDS
    return key, IDEMPOTENCY_KEY_SECONDS


async def _submit(
    request: Request[Principal, Any, Any],
    service: CommandService,
    command: CommandRequest,
    *,
    prefer: str | None,
    idempotency_key: str | None,
    if_match: str | None,
) -> Response[bytes]:
    # A store-limited user's command elsewhere is refused before anything is published.
    await ensure_in_scope(service, request.user, command)
    key, lifetime = _replay_key(request, idempotency_key)
    submission = Submission(
        command=command,
        actor=request.user.username,
        request_id=request_id_of(request.scope),
        # Only a key can make a retry: no need to fingerprint the others.
        request_hash=request_fingerprint(request.method, request.url.path, await request.body(), if_match)
        if key
        else "",
        wait_seconds=wait_seconds(prefer),
        idempotency_key=key,
        key_lifetime=lifetime,
        # A client's key may come back on another command node: the same ids there.
        derived_ids=idempotency_key is not None,
    )
    return await answer(service, submission)


def _values(data: msgspec.Struct | None) -> dict[str, Any]:
    return msgspec.structs.asdict(data) if data is not None else {}


def _route(spec: CommandSpec, handler: Any) -> HTTPRouteHandler:
    handler.__name__ = handler.__qualname__ = f"command_{spec.name}"
    if spec.body is not None:
        examples = [Example(summary=spec.summary, value=dict(spec.example))] if spec.example else None
        # The body type differs per command: set on the function so Litestar decodes and documents it.
        handler.__annotations__["data"] = Annotated[
            spec.body, Body(media_type=RequestEncodingType.JSON, examples=examples)
        ]
    return route(
        ITEMS_PATH + spec.json_path,
        http_method=[spec.method],
        responses=CREATED if spec.creates_item else WAITED,
        status_code=202,
        summary=spec.summary,
        description=spec.description or None,
        operation_id=f"command_{spec.name}",
        tags=["commands"],
        before_request=_before(spec.role),
    )(handler)


def _new_item_route(spec: CommandSpec) -> HTTPRouteHandler:
    async def handler(
        request: Request[Principal, Any, Any],
        data: Any,
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
    ) -> Response[bytes]:
        item_id = new_uuid()
        if idempotency_key is not None:
            _replay_key(request, idempotency_key)  # a malformed key is refused first
            # A retry of a create under its key names the same new item, whichever node it reaches.
            fingerprint = request_fingerprint(request.method, request.url.path, await request.body(), None)
            item_id = keyed_ids(request.user.username, idempotency_key, fingerprint).item_id
        command = spec.check(_values(data), item_id=item_id, places=service.places)
        return await _submit(request, service, command, prefer=prefer, idempotency_key=idempotency_key, if_match=None)

    return _route(spec, handler)


def _item_route(spec: CommandSpec) -> HTTPRouteHandler:
    async def handler(
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        data: Any,
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
        if_match: IfMatchHeader = None,
    ) -> Response[bytes]:
        command = spec.check(
            _values(data),
            item_id=check_item_id(item_id),
            places=service.places,
            expected_version=check_expected_version(if_match),
        )
        return await _submit(
            request, service, command, prefer=prefer, idempotency_key=idempotency_key, if_match=if_match
        )

    return _route(spec, handler)


def _bodiless_item_route(spec: CommandSpec) -> HTTPRouteHandler:
    async def handler(
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
        if_match: IfMatchHeader = None,
    ) -> Response[bytes]:
        command = spec.check(
            {}, item_id=check_item_id(item_id), places=service.places, expected_version=check_expected_version(if_match)
        )
        return await _submit(
            request, service, command, prefer=prefer, idempotency_key=idempotency_key, if_match=if_match
        )

    return _route(spec, handler)


def command_routes() -> list[HTTPRouteHandler]:
    """One JSON route per command of the catalogue."""
    routes = []
    for spec in PUBLIC_COMMANDS:
        if spec.creates_item:
            routes.append(_new_item_route(spec))
        elif spec.body is None:
            routes.append(_bodiless_item_route(spec))
        else:
            routes.append(_item_route(spec))
    return routes


class CommandStatusController(Controller):
    path = "/api/v1/commands"
    tags = ["commands"]

    @get(
        "/{command_id:str}",
        guards=[requires(Role.VIEWER)],
        responses={404: ResponseSpec(ErrorBody, description="Unknown command"), 400: ResponseSpec(ErrorBody)},
        summary="How a command ended (pending, applied, rejected)",
    )
    async def command_status(
        self,
        request: Request[Principal, Any, Any],
        command_id: FromPath[str],
        status: NamedDependency[CommandStatus],
    ) -> Response[CommandStatusView]:
        stored = normalise_uuid(command_id)
        if stored is None:
            raise InvalidCommand([FieldError("command_id", "must be a UUID")])
        found, seq = await status.get_with_seq(stored, request.user)  # its author, managers and admins
        if found is None:
            raise ApiError(404, "no such command", details={"command_id": command_id})
        # A known outcome on the command role: read a query node with X-Min-Seq set to it.
        return Response(found, headers={SEQ_HEADER: str(seq)} if seq is not None else None)
