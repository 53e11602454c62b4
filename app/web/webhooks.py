"""The Webhooks page (served by the query service, with the other pages): an admin registers an
endpoint (its secret is shown once, in the answer), sees each endpoint's state, counts and last
error, pauses, resumes or removes it, and opens an endpoint's page: its dead letters, each with
a redeliver button, and its recent deliveries.

Plain forms (POST, then a redirect back), the page's CSRF token in each: nothing here needs a
script. The changes go through the same store and checks as the admin API
(app/webhooks/controller.py).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain.webhooks import EVENT_KINDS
from app.http.auth import requires
from app.settings import Settings
from app.web.context import page_context
from app.webhooks.controller import manages_webhooks
from app.webhooks.service import WebhookError, register
from app.webhooks.store import Delivery, Endpoint, WebhookNotFound, WebhookStore

RECENT = 50
# What each kind is, for the form's checkboxes.
EVENT_LABELS = {
    "item.created": "Item created",
    "item.changed": "Item changed (name, description, threshold)",
    "item.deleted": "Item deleted",
    "stock.changed": "Stock changed",
    "stock.low": "Low stock",
    "stock.out": "Out of stock",
    "stock.back_in_stock": "Back in stock",
    "reservation.expired": "Reservation expired",
    "transfer.received": "Transfer received",
}


def endpoint_row(endpoint: Endpoint, counts: dict[str, int] | None) -> dict[str, Any]:
    counts = counts or {}
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "state": endpoint.state,
        "paused_reason": endpoint.paused_reason,
        "created_at": endpoint.created_at,
        "last_error": endpoint.last_error,
        "last_attempt_at": endpoint.last_attempt_at,
        "pending": counts.get("pending", 0),
        "delivered": counts.get("delivered", 0),
        "dead": counts.get("dead", 0),
    }


def delivery_row(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "type": delivery.type,
        "item_id": delivery.item_id,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "committed_at": delivery.committed_at,
        "delivered_at": delivery.delivered_at,
    }


class WebhooksPageController(Controller):
    path = "/webhooks"
    guards = [requires(Role.ADMIN), manages_webhooks]
    include_in_schema = False

    @get("/")
    async def webhooks_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        webhooks: NamedDependency[WebhookStore],
    ) -> Template:
        return await _list_page(request, settings, webhooks)

    @post("/", status_code=201)
    async def add(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        webhooks: NamedDependency[WebhookStore],
    ) -> Template:
        form = await request.form()
        url = str(form.get("url", ""))[:4000]
        events = [str(e) for e in form.getall("events", [])][:20]
        secret = str(form.get("secret", ""))[:400] or None
        try:
            endpoint = await register(webhooks, url, events, secret, allow_private=settings.webhooks_allow_private)
        except WebhookError as exc:
            form_values = {"url": url, "events": events}
            return await _list_page(
                request,
                settings,
                webhooks,
                error=exc.message,
                error_field=exc.field,
                form=form_values,
                status=exc.status,
            )
        return await _list_page(request, settings, webhooks, created=endpoint, status=201)

    @get("/{webhook_id:str}")
    async def endpoint_page(
        self,
        request: Request[Principal, Any, Any],
        webhook_id: FromPath[str],
        settings: NamedDependency[Settings],
        webhooks: NamedDependency[WebhookStore],
    ) -> Template:
        endpoint = await _endpoint(webhooks, webhook_id)
        counts = (await webhooks.counts()).get(endpoint.id)
        dead = [delivery_row(d) for d in await webhooks.deliveries(endpoint.id, state="dead", limit=RECENT)]
        recent = [delivery_row(d) for d in await webhooks.deliveries(endpoint.id, limit=RECENT)]
        context = page_context(
            request,
            settings,
            nav="webhooks",
            endpoint=endpoint_row(endpoint, counts),
            dead=dead,
            recent=recent,
            labels=EVENT_LABELS,
        )
        return Template("webhooks_endpoint.html", context=context)

    @post("/{webhook_id:str}/pause")
    async def pause(self, webhook_id: FromPath[str], webhooks: NamedDependency[WebhookStore]) -> Redirect:
        await _endpoint(webhooks, webhook_id)
        await webhooks.pause(webhook_id, "paused by an admin")
        return Redirect(f"/webhooks/{webhook_id}", status_code=303)

    @post("/{webhook_id:str}/resume")
    async def resume(self, webhook_id: FromPath[str], webhooks: NamedDependency[WebhookStore]) -> Redirect:
        try:
            await webhooks.resume(webhook_id)
        except WebhookNotFound:
            raise NotFoundException("no such webhook endpoint") from None
        return Redirect(f"/webhooks/{webhook_id}", status_code=303)

    @post("/{webhook_id:str}/delete")
    async def remove(self, webhook_id: FromPath[str], webhooks: NamedDependency[WebhookStore]) -> Redirect:
        try:
            await webhooks.remove(webhook_id)
        except WebhookNotFound:
            raise NotFoundException("no such webhook endpoint") from None
        return Redirect("/webhooks", status_code=303)

    @post("/{webhook_id:str}/deliveries/{delivery_id:str}/redeliver")
    async def redeliver(
        self, webhook_id: FromPath[str], delivery_id: FromPath[str], webhooks: NamedDependency[WebhookStore]
    ) -> Redirect:
        try:
            await webhooks.redeliver(webhook_id, delivery_id)
        except WebhookNotFound:
            raise NotFoundException("no such delivery") from None
        return Redirect(f"/webhooks/{webhook_id}", status_code=303)


async def _endpoint(webhooks: WebhookStore, webhook_id: str) -> Endpoint:
    try:
        return await webhooks.endpoint(webhook_id)
    except WebhookNotFound:
        raise NotFoundException("no such webhook endpoint") from None


async def _list_page(
    request: Request[Principal, Any, Any],
    settings: Settings,
    webhooks: WebhookStore,
    *,
    created: Endpoint | None = None,
    error: str | None = None,
    error_field: str | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> Template:
    counts = await webhooks.counts()
    rows = [endpoint_row(e, counts.get(e.id)) for e in await webhooks.endpoints()]
    context = page_context(
        request,
        settings,
        nav="webhooks",
        endpoints=rows,
        kinds=EVENT_KINDS,
        labels=EVENT_LABELS,
        created=created,
        error=error,
        error_field=error_field,
        form=form or {"url": "", "events": list(EVENT_KINDS)},
        allow_private=settings.webhooks_allow_private,
    )
    return Template("webhooks.html", context=context, status_code=status)
