"""HTTP entrypoints of the command service: thin, they translate HTTP to a Submission and back."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.commands.outcomes import CommandStatus
from app.commands.schemas import (
    AdjustStock,
    CommandAccepted,
    CommandStatusBody,
    CreateItem,
    ErrorBody,
    MoveStock,
    UpdateItem,
)
from app.commands.service import (
    REQUEST_ID_REPLAY_SECONDS,
    CommandService,
    Reply,
    Submission,
    request_fingerprint,
)
from app.domain import commands as checks
from app.domain.commands import CommandRequest, InvalidCommand
from app.domain.events import EventType
from app.http.auth import requires
from app.http.errors import ApiError
from app.http.request_id import client_request_id, request_id_of

PREFER_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?", re.IGNORECASE)
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

ERRORS = {
    400: ResponseSpec(ErrorBody, description="Invalid body or parameters, with per-field details"),
    401: ResponseSpec(ErrorBody, description="Missing, expired or invalid token"),
    403: ResponseSpec(ErrorBody, description="Your role does not allow this command"),
    404: ResponseSpec(ErrorBody, description="No such item (or rejected unknown_item after waiting)"),
    409: ResponseSpec(ErrorBody, description="SKU taken, or rejected after waiting (reason in details)"),
    413: ResponseSpec(ErrorBody, description="Body too large"),
    415: ResponseSpec(ErrorBody, description="Body is not application/json"),
    422: ResponseSpec(ErrorBody, description="Idempotency-Key reused with another request"),
    503: ResponseSpec(ErrorBody, description="The event log is unavailable; nothing was accepted (see Retry-After)"),
}
ACCEPTED = {
    202: ResponseSpec(CommandAccepted, description="Durably in the event log; follow Location for the outcome"),
    **ERRORS,
}
WAITED = {
    200: ResponseSpec(dict[str, Any], description="Applied (Prefer: wait): the resulting item"),
    **ACCEPTED,
}

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


async def _ensure_json(request: Request[Any, Any, Any]) -> None:
    """Runs before the body is parsed, so a wrong content type is a 415 and not a parse error."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise ApiError(415, "send the body as application/json", details={"content_type": content_type or None})


def _to_response(reply: Reply) -> Response[bytes]:
    return Response(reply.body, status_code=reply.status, headers=reply.headers, media_type="application/json")


class CommandController(Controller):
    path = "/api/v1/inventory/items"
    tags = ["commands"]
    before_request = _ensure_json  # type: ignore[assignment]

    async def _submit(
        self,
        request: Request[Principal, Any, Any],
        service: NamedDependency[CommandService],
        command: CommandRequest,
        *,
        precheck: Callable[[], Awaitable[None]],
        prefer: str | None,
        idempotency_key: str | None,
        if_match: str | None,
    ) -> Response[bytes]:
        key = idempotency_key
        lifetime: float = 24 * 3600
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise InvalidCommand([checks.FieldError("Idempotency-Key", "must be 1-255 printable ASCII characters")])
        if key is None and (sent_id := client_request_id(request.scope)) is not None:
            # Older clients retry with the same X-Request-ID; honour it for five minutes.
            key, lifetime = f"request-id:{sent_id}", REQUEST_ID_REPLAY_SECONDS
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
            precheck=precheck,
        )
        return _to_response(await service.submit(submission))

    @post(
        "",
        guards=[requires(Role.MANAGER)],
        responses={201: ResponseSpec(dict[str, Any], description="Created (Prefer: wait)"), **ACCEPTED},
        status_code=202,
        summary="Create an item",
    )
    async def create_item(
        self,
        request: Request[Principal, Any, Any],
        data: JSONBody[CreateItem],
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
    ) -> Response[bytes]:
        command = checks.create_item(
            item_id=str(uuid.uuid4()),
            sku=data.sku,
            name=data.name,
            description=data.description,
            quantity=data.quantity,
            location=data.location,
            locations=service.locations,
            default_location=service.default_location,
            low_stock_threshold=data.low_stock_threshold,
        )
        sku = data.sku.strip()
        return await self._submit(
            request,
            service,
            command,
            precheck=lambda: service.ensure_sku_free(sku),
            prefer=prefer,
            idempotency_key=idempotency_key,
            if_match=None,
        )

    @put(
        "/{item_id:str}",
        guards=[requires(Role.MANAGER)],
        responses=WAITED,
        status_code=202,
        summary="Rename or describe an item",
    )
    async def update_item(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        data: JSONBody[UpdateItem],
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
        if_match: IfMatchHeader = None,
    ) -> Response[bytes]:
        item_id = checks.check_item_id(item_id)
        command = checks.update_item(
            item_id=item_id,
            name=data.name,
            description=data.description,
            expected_version=checks.check_expected_version(if_match),
            default_location=service.default_location,
            low_stock_threshold=data.low_stock_threshold,
        )
        return await self._submit(
            request,
            service,
            command,
            precheck=lambda: service.ensure_item_exists(item_id, EventType.ITEM_UPDATED),
            prefer=prefer,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )

    @delete(
        "/{item_id:str}",
        guards=[requires(Role.MANAGER)],
        responses=WAITED,
        status_code=202,
        summary="Delete an item",
    )
    async def delete_item(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
        if_match: IfMatchHeader = None,
    ) -> Response[bytes]:
        item_id = checks.check_item_id(item_id)
        command = checks.delete_item(
            item_id=item_id,
            expected_version=checks.check_expected_version(if_match),
            default_location=service.default_location,
        )
        return await self._submit(
            request,
            service,
            command,
            precheck=lambda: service.ensure_item_exists(item_id, EventType.ITEM_DELETED),
            prefer=prefer,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )

    @post(
        "/{item_id:str}/adjust",
        guards=[requires(Role.CLERK)],
        responses=WAITED,
        status_code=202,
        summary="Adjust stock by a signed amount",
    )
    async def adjust_stock(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        data: JSONBody[AdjustStock],
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
        if_match: IfMatchHeader = None,
    ) -> Response[bytes]:
        item_id = checks.check_item_id(item_id)
        command = checks.adjust_stock(
            item_id=item_id,
            quantity=data.quantity,
            location=data.location,
            reason=data.reason,
            expected_version=checks.check_expected_version(if_match),
            locations=service.locations,
            default_location=service.default_location,
        )
        return await self._submit(
            request,
            service,
            command,
            precheck=lambda: service.ensure_item_exists(item_id, EventType.STOCK_ADJUSTED),
            prefer=prefer,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )

    @post(
        "/{item_id:str}/reserve",
        guards=[requires(Role.CLERK)],
        responses=WAITED,
        status_code=202,
        summary="Reserve stock",
    )
    async def reserve_stock(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        data: JSONBody[MoveStock],
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
        if_match: IfMatchHeader = None,
    ) -> Response[bytes]:
        return await self._move(
            EventType.STOCK_RESERVED,
            request,
            item_id,
            data,
            service,
            prefer,
            idempotency_key,
            if_match,
        )

    @post(
        "/{item_id:str}/release",
        guards=[requires(Role.CLERK)],
        responses=WAITED,
        status_code=202,
        summary="Release reserved stock",
    )
    async def release_stock(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        data: JSONBody[MoveStock],
        service: NamedDependency[CommandService],
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyHeader = None,
        if_match: IfMatchHeader = None,
    ) -> Response[bytes]:
        return await self._move(
            EventType.STOCK_RELEASED,
            request,
            item_id,
            data,
            service,
            prefer,
            idempotency_key,
            if_match,
        )

    async def _move(
        self,
        event_type: EventType,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        data: JSONBody[MoveStock],
        service: NamedDependency[CommandService],
        prefer: str | None,
        idempotency_key: str | None,
        if_match: str | None,
    ) -> Response[bytes]:
        item_id = checks.check_item_id(item_id)
        command = checks.move_stock(
            event_type=event_type,
            item_id=item_id,
            quantity=data.quantity,
            location=data.location,
            expected_version=checks.check_expected_version(if_match),
            locations=service.locations,
            default_location=service.default_location,
        )
        return await self._submit(
            request,
            service,
            command,
            precheck=lambda: service.ensure_item_exists(item_id, event_type),
            prefer=prefer,
            idempotency_key=idempotency_key,
            if_match=if_match,
        )


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
        self, request: Request[Principal, Any, Any], command_id: FromPath[str], status: NamedDependency[CommandStatus]
    ) -> CommandStatusBody:
        if not checks.UUID_PATTERN.match(command_id):
            raise InvalidCommand([checks.FieldError("command_id", "must be a UUID")])
        found = await status.get(command_id.lower(), request.user)  # its author, managers and admins
        if found is None:
            raise ApiError(404, "no such command", details={"command_id": command_id})
        return CommandStatusBody(**found)
