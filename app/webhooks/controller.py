"""The admin API for webhooks: register, list, remove, pause and resume endpoints; list an
endpoint's deliveries (its dead letters with ``?state=dead``) and send one again.

Served by every role that serves the API (webhooks.db is shared, like users.db); the deliveries
themselves are made by the dispatcher in the listener role (app/webhooks/dispatcher.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.http.auth import requires
from app.http.errors import ApiError, ErrorBody
from app.settings import Settings
from app.webhooks.service import MAX_SECRET_LENGTH, MIN_SECRET_LENGTH, SECRET_PATTERN, WebhookError, register
from app.webhooks.store import Delivery, Endpoint, WebhookNotFound, WebhookStore
from app.webhooks.urls import MAX_URL_LENGTH, URL_PATTERN

EventName = Literal[
    "item.created", "item.changed", "item.deleted", "stock.changed", "stock.low", "stock.out",
    "stock.back_in_stock", "reservation.expired", "transfer.received",
]  # fmt: skip
DeliveryState = Literal["pending", "delivered", "dead"]


class NewWebhook(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[
        str,
        msgspec.Meta(
            description="http:// or https://, to a public address (a private one is refused with 403)",
            max_length=MAX_URL_LENGTH,
            pattern=URL_PATTERN,
        ),
    ]
    events: Annotated[list[EventName], msgspec.Meta(min_length=1, max_length=20)]
    secret: (
        Annotated[
            str,
            msgspec.Meta(
                description="16-200 printable ASCII characters, no spaces; omit it and one is made (shown once)",
                min_length=MIN_SECRET_LENGTH,
                max_length=MAX_SECRET_LENGTH,
                pattern=SECRET_PATTERN,
            ),
        ]
        | None
    ) = None


class DeliveryCounts(msgspec.Struct):
    pending: int
    delivered: int
    dead: int


class WebhookBody(msgspec.Struct, omit_defaults=True):
    """An endpoint as the API shows it; ``secret`` only in the answer that registered it."""

    id: str
    url: str
    events: list[str]
    state: Literal["active", "paused"]
    created_at: str
    paused_reason: str | None = None
    last_error: str | None = None
    last_attempt_at: str | None = None
    deliveries: DeliveryCounts | None = None
    secret: str | None = None


class DeliveryBody(msgspec.Struct):
    id: str
    type: str
    item_id: str
    seq: int
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error: str | None
    committed_at: str
    created_at: str
    delivered_at: str | None


CLOSED_BODIES = (NewWebhook,)


async def manages_webhooks(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """An admin with every location: webhooks carry every location's changes."""
    user = connection.scope.get("user")
    if isinstance(user, Principal) and user.can(Role.ADMIN) and user.locations:
        raise PermissionDeniedException("managing webhooks needs an admin with every location")


def webhook_body(endpoint: Endpoint, counts: dict[str, int] | None = None, *, secret: bool = False) -> WebhookBody:
    state: Literal["active", "paused"] = "paused" if endpoint.state == "paused" else "active"
    return WebhookBody(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        state=state,
        created_at=endpoint.created_at,
        paused_reason=endpoint.paused_reason,
        last_error=endpoint.last_error,
        last_attempt_at=endpoint.last_attempt_at,
        deliveries=DeliveryCounts(
            (counts or {}).get("pending", 0), (counts or {}).get("delivered", 0), (counts or {}).get("dead", 0)
        ),
        secret=endpoint.secret if secret else None,
    )


def delivery_view(delivery: Delivery) -> DeliveryBody:
    state: DeliveryState = delivery.state  # type: ignore[assignment]  # the store writes only these three
    return DeliveryBody(
        delivery.id, delivery.type, delivery.item_id, delivery.seq, state, delivery.attempts,
        delivery.last_status, delivery.last_error, delivery.committed_at, delivery.created_at, delivery.delivered_at,
    )  # fmt: skip


def webhook_error(exc: WebhookError) -> ApiError:
    return ApiError(exc.status, exc.message, details=[{"field": exc.field, "message": exc.message}])


def not_found(what: str) -> ApiError:
    return ApiError(404, f"no such {what}")


ERRORS = {
    401: ResponseSpec(ErrorBody, description="Missing, expired or invalid token"),
    403: ResponseSpec(
        ErrorBody, description="Needs the admin role with every location; or the URL's address is not public"
    ),
}
BAD = {400: ResponseSpec(ErrorBody, description="Bad input (a refused URL, an unknown event kind...)")}
NOT_FOUND = {404: ResponseSpec(ErrorBody, description="No such endpoint or delivery")}


class WebhooksController(Controller):
    path = "/api/v1/webhooks"
    tags = ["webhooks"]
    guards = [requires(Role.ADMIN), manages_webhooks]

    @post(
        "/",
        status_code=201,
        summary="Register an endpoint (its secret is in this answer only)",
        description=(
            "The URL must be http or https and resolve to public addresses only (unless "
            "INVENTORY_WEBHOOKS_ALLOW_PRIVATE=1). Deliveries are POSTed with the headers "
            "Inventory-Webhook-Id, Inventory-Webhook-Timestamp and Inventory-Webhook-Signature "
            '(t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">).'
        ),
        responses={**ERRORS, **BAD},
    )
    async def add_webhook(
        self, data: JSONBody[NewWebhook], webhooks: NamedDependency[WebhookStore], settings: NamedDependency[Settings]
    ) -> WebhookBody:
        try:
            endpoint = await register(
                webhooks, data.url, data.events, data.secret, allow_private=settings.webhooks_allow_private
            )
        except WebhookError as exc:
            raise webhook_error(exc) from None
        return webhook_body(endpoint, secret=True)

    @get("/", summary="Every endpoint, with its state and delivery counts", responses=ERRORS)
    async def list_webhooks(self, webhooks: NamedDependency[WebhookStore]) -> list[WebhookBody]:
        counts = await webhooks.counts()
        return [webhook_body(e, counts.get(e.id)) for e in await webhooks.endpoints()]

    @get("/{webhook_id:str}", summary="One endpoint", responses={**ERRORS, **NOT_FOUND})
    async def get_webhook(self, webhook_id: FromPath[str], webhooks: NamedDependency[WebhookStore]) -> WebhookBody:
        endpoint = await _endpoint(webhooks, webhook_id)
        return webhook_body(endpoint, (await webhooks.counts()).get(endpoint.id))

    @delete(
        "/{webhook_id:str}",
        status_code=204,
        summary="Remove an endpoint and its deliveries",
        responses={**ERRORS, **NOT_FOUND},
    )
    async def remove_webhook(self, webhook_id: FromPath[str], webhooks: NamedDependency[WebhookStore]) -> None:
        try:
            await webhooks.remove(webhook_id)
        except WebhookNotFound:
            raise not_found("webhook endpoint") from None

    @post(
        "/{webhook_id:str}/pause",
        status_code=200,
        summary="Pause an endpoint: its deliveries are kept and wait",
        responses={**ERRORS, **NOT_FOUND},
    )
    async def pause_webhook(self, webhook_id: FromPath[str], webhooks: NamedDependency[WebhookStore]) -> WebhookBody:
        await _endpoint(webhooks, webhook_id)
        await webhooks.pause(webhook_id, "paused by an admin")
        endpoint = await _endpoint(webhooks, webhook_id)
        return webhook_body(endpoint, (await webhooks.counts()).get(endpoint.id))

    @post(
        "/{webhook_id:str}/resume",
        status_code=200,
        summary="Resume a paused endpoint: its waiting deliveries are sent at once",
        responses={**ERRORS, **NOT_FOUND},
    )
    async def resume_webhook(self, webhook_id: FromPath[str], webhooks: NamedDependency[WebhookStore]) -> WebhookBody:
        try:
            endpoint = await webhooks.resume(webhook_id)
        except WebhookNotFound:
            raise not_found("webhook endpoint") from None
        return webhook_body(endpoint, (await webhooks.counts()).get(endpoint.id))

    @get(
        "/{webhook_id:str}/deliveries",
        summary="An endpoint's deliveries, newest first (state=dead: its dead-letter list)",
        responses={**ERRORS, **NOT_FOUND},
    )
    async def list_deliveries(
        self,
        webhook_id: FromPath[str],
        webhooks: NamedDependency[WebhookStore],
        # "state" is a name Litestar keeps for itself: the parameter is called so, the argument not.
        in_state: Annotated[
            DeliveryState | None, QueryParameter(name="state", description="pending, delivered or dead")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="at most this many, newest first")] = 100,
    ) -> list[DeliveryBody]:
        await _endpoint(webhooks, webhook_id)
        return [delivery_view(d) for d in await webhooks.deliveries(webhook_id, state=in_state, limit=limit)]

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:str}/redeliver",
        status_code=202,
        summary="Send a delivery again (same id and body, attempts from zero)",
        responses={**ERRORS, **NOT_FOUND},
    )
    async def redeliver(
        self, webhook_id: FromPath[str], delivery_id: FromPath[str], webhooks: NamedDependency[WebhookStore]
    ) -> Response[DeliveryBody]:
        try:
            delivery = await webhooks.redeliver(webhook_id, delivery_id)
        except WebhookNotFound:
            raise not_found("delivery of this endpoint") from None
        return Response(delivery_view(delivery), status_code=202)


async def _endpoint(webhooks: WebhookStore, webhook_id: str) -> Endpoint:
    try:
        return await webhooks.endpoint(webhook_id)
    except WebhookNotFound:
        raise not_found("webhook endpoint") from None
