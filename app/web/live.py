"""The pages' live stream: each change rendered with the same partials the pages use, sent as
out-of-band swaps (one hidden sink per page; see "Live streams" in docs/decisions.md).

Rows and tiles are sent as replacements of themselves; one that is not on the page yet is
appended to its container by static/app.js (it carries ``data-home``). After every
(re)connection the page is told to ``resync`` and reloads its fragment, so nothing missed while
disconnected stays missed. All markup is in ``templates/partials/oob_*.html``.
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
from app.domain import rules
from app.domain.records import Change, ItemView, OutcomeChange
from app.domain.views import at_location
from app.http.auth import requires
from app.queries.service import ItemNotFound, QueryService
from app.queries.stream import RETRY_MS, ChangeStream, StreamItem
from app.settings import Settings
from app.web.context import role_context, site_context
from app.web.labels import badge_context
from app.web.rendering import Renderer

ViewKind = Literal["dashboard", "wall", "item", "events"]
VIEW_KINDS: tuple[ViewKind, ...] = ("dashboard", "wall", "item", "events")
HISTORY_ROWS = 30


@dataclass(frozen=True)
class View:
    kind: ViewKind
    q: str = ""
    location: str | None = None
    item_id: str | None = None

    def shows(self, item: ItemView) -> bool:
        """Whether this page lists the item at all (search and location filter)."""
        q = self.q.lower()
        if q and q not in item.sku.lower() and q not in item.name.lower():
            return False
        return not self.location or any(level.location == self.location for level in item.locations)


class LiveUpdates:
    # app/http/application.py still hands over the reader as a second argument; items are read
    # through the query service of each stream instead (cache first, like the API).
    def __init__(self, renderer: Renderer, _unused: object = None) -> None:
        self._renderer = renderer

    async def messages(
        self,
        items: AsyncGenerator[StreamItem, None],
        view: View,
        context: dict[str, Any],
        queries: QueryService,
    ) -> AsyncGenerator[ServerSentEventMessage, None]:
        async for item in items:
            if item.kind in ("hello", "reset"):
                yield ServerSentEventMessage(data="resync", event="resync", retry=RETRY_MS)
            elif item.kind == "ping":
                yield ServerSentEventMessage(comment="ping")
            elif item.kind == "change":
                html = await self.render(item.change(), view, context, queries)
                if html:
                    yield ServerSentEventMessage(data=html, event="update", id=str(item.seq))

    async def render(self, change: Change, view: View, context: dict[str, Any], queries: QueryService) -> str:
        render = self._renderer.render
        if view.kind == "events":
            return render("partials/oob_event.html", change=change, **context)
        if isinstance(change, OutcomeChange):
            if view.kind == "wall":
                return ""
            return render("partials/oob_badge.html", **context, **badge_context(change))
        if view.kind == "item":
            return await self._item_panel(change.item_id, view, context, queries)
        template = "partials/oob_row.html" if view.kind == "dashboard" else "partials/oob_tile.html"
        item = change.item
        if change.deleted or item is None or not view.shows(item):
            return render(template, removed=True, item_id=change.item_id, **context)
        if view.location:
            item = at_location(item, view.location)
        return render(template, item=item, **context)

    async def _item_panel(self, item_id: str, view: View, context: dict[str, Any], queries: QueryService) -> str:
        if item_id != view.item_id:
            return ""
        try:
            detail = await queries.item_detail(item_id, history_rows=HISTORY_ROWS)
        except ItemNotFound:
            return ""
        return self._renderer.render(
            "partials/oob_item_panel.html",
            item=detail.item,
            deleted=detail.deleted,
            history=detail.history,
            **context,
        )


@get("/ui/stream", guards=[requires(Role.VIEWER)], include_in_schema=False)
async def page_stream(
    request: Request[Principal, Any, Any],
    change_stream: NamedDependency[ChangeStream],
    live_updates: NamedDependency[LiveUpdates],
    queries: NamedDependency[QueryService],
    settings: NamedDependency[Settings],
) -> ServerSentEvent:
    params = request.query_params
    kind: ViewKind = next((k for k in VIEW_KINDS if k == params.get("view")), "dashboard")
    location: str | None = rules.normalise_location(params.get("location"))
    if location not in settings.locations:
        location = settings.default_location if kind == "wall" else None
    view = View(
        kind=kind,
        q=(params.get("q") or "").strip()[:100],
        location=location,
        item_id=rules.normalise_uuid(params.get("item_id") or ""),
    )
    context = {**site_context(settings), **role_context(request.user), "location": view.location}
    return ServerSentEvent(live_updates.messages(change_stream.items(None), view, context, queries))
