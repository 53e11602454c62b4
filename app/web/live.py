"""The pages' live stream: each change rendered with the same partials the pages use, sent as
out-of-band swaps (one hidden sink per page, DESIGN §7).

Rows and tiles are sent as replacements of themselves; one that is not on the page yet is
appended to its container by static/app.js (it carries ``data-home``). After every
(re)connection the page is told to ``resync`` and reloads its fragment, so nothing missed while
disconnected stays missed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain.commands import UUID_PATTERN
from app.domain.views import at_location, item_view
from app.http.auth import requires
from app.http.stream_limits import leased
from app.queries.stream import RETRY_MS, ChangeStream, StreamItem
from app.reader import InventoryReader
from app.settings import Settings
from app.web.context import role_context, site_context
from app.web.labels import badge_context
from app.web.rendering import Renderer

ViewKind = Literal["dashboard", "wall", "item", "events"]
HISTORY_ROWS = 30


@dataclass(frozen=True)
class View:
    kind: ViewKind
    q: str = ""
    location: str | None = None
    item_id: str | None = None

    def shows(self, item: dict[str, Any]) -> bool:
        """Whether this page lists the item at all (search and location filter)."""
        if self.q and self.q.lower() not in item["sku"].lower() and self.q.lower() not in item["name"].lower():
            return False
        return not self.location or any(level["location"] == self.location for level in item["locations"])


def _template(html: str) -> str:
    # Table rows must travel inside <template>, or the HTML parser drops them outside a table.
    return f"<template>{html}</template>"


class LiveUpdates:
    def __init__(self, renderer: Renderer, reader: InventoryReader) -> None:
        self._renderer = renderer
        self._reader = reader

    async def messages(
        self, items: AsyncGenerator[StreamItem, None], view: View, context: dict[str, Any]
    ) -> AsyncGenerator[ServerSentEventMessage, None]:
        async for item in items:
            if item.kind in ("hello", "reset"):
                yield ServerSentEventMessage(data="resync", event="resync", retry=RETRY_MS)
            elif item.kind == "ping":
                yield ServerSentEventMessage(comment="ping")
            elif item.kind == "change":
                html = await self.render(item.change(), view, context)
                if html:
                    yield ServerSentEventMessage(data=html, event="update", id=str(item.seq))

    async def render(self, change: dict[str, Any], view: View, context: dict[str, Any]) -> str:
        if view.kind == "events":
            entry = self._renderer.render("partials/event_entry.html", change=change, **context)
            return f'<ol hx-swap-oob="afterbegin:#log">{entry}</ol>'
        if change["kind"] == "outcome":
            if view.kind == "wall":
                return ""
            return self._renderer.render("partials/badge_state.html", oob=True, **context, **badge_context(change))
        if view.kind == "item":
            return await self._item_panel(change, view, context)
        item_id = change["item_id"]
        element = f"row-{item_id}" if view.kind == "dashboard" else f"tile-{item_id}"
        item = change.get("item")
        if change.get("deleted") or item is None or not view.shows(item):
            removal = (
                f'<tr id="{element}" hx-swap-oob="delete"></tr>'
                if view.kind == "dashboard"
                else (f'<div id="{element}" hx-swap-oob="delete"></div>')
            )
            return _template(removal)
        if view.location:
            item = at_location(item, view.location)
        if view.kind == "dashboard":
            row = self._renderer.render("partials/item_row.html", item=item, oob=True, **context)
            return _template(row)
        return self._renderer.render("partials/tile.html", item=item, oob=True, **context)

    async def _item_panel(self, change: dict[str, Any], view: View, context: dict[str, Any]) -> str:
        if change["item_id"] != view.item_id:
            return ""
        stored = await self._reader.item(change["item_id"])
        if stored is None:
            return ""
        item = item_view(stored)
        item["deleted"] = stored.deleted
        history = await self._reader.history(stored.id, limit=HISTORY_ROWS, before=None)
        return self._renderer.render("partials/item_panel.html", item=item, history=history, oob=True, **context)


@get("/ui/stream", guards=[requires(Role.VIEWER)], include_in_schema=False)
async def page_stream(
    request: Request[Principal, Any, Any],
    change_stream: NamedDependency[ChangeStream],
    live_updates: NamedDependency[LiveUpdates],
    settings: NamedDependency[Settings],
) -> ServerSentEvent:
    params = request.query_params
    kind = params.get("view", "dashboard")
    if kind not in ("dashboard", "wall", "item", "events"):
        kind = "dashboard"
    location: str | None = (params.get("location") or "").strip().upper()
    if location not in settings.locations:
        location = settings.default_location if kind == "wall" else None
    item_id = (params.get("item_id") or "").lower()
    view = View(
        kind=kind,  # type: ignore[arg-type]
        q=(params.get("q") or "").strip()[:100],
        location=location,
        item_id=item_id if UUID_PATTERN.match(item_id) else None,
    )
    context = {**site_context(settings), **role_context(request.user), "location": view.location}
    lease = change_stream.limiter.open(request.user)  # the same cap as the API's stream
    return ServerSentEvent(leased(lease, live_updates.messages(change_stream.items(None), view, context)))
