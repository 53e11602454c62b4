"""The pages' live stream: each change rendered with the same partials the pages use, sent as
out-of-band swaps (one hidden sink per page; see "Live streams" in docs/decisions.md).

Rows and tiles are sent as replacements of themselves; one that is not on the page yet is
appended to its container by static/app.js (it carries ``data-home``). After every
(re)connection the page is told to ``resync`` and reloads its fragment, so nothing missed while
disconnected stays missed. All markup is in ``templates/partials/oob_*.html``.

Each page subscribes to what it shows (``app/queries/feed.py:Subscription``): a wall and a
store's dashboard to their location, the chain's dashboard and the events page to the chain
(item totals, no levels), an item page to its item. So a wall's stream carries its store's
changes, the item edits and deletes that every store shows, and nothing of the other stores.
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
from app.domain.records import Change, ItemChange, ItemSummary, OutcomeChange
from app.domain.views import at_location, with_levels
from app.http.auth import requires
from app.http.stream_limits import leased
from app.queries.feed import CHAIN_WIDE, Subscription
from app.queries.service import ItemNotFound, QueryService
from app.queries.stream import RETRY_MS, ChangeStream, StreamItem
from app.settings import Settings
from app.web.context import role_context, site_context
from app.web.labels import badge_context
from app.web.pages import HISTORY_ROWS, LEVELS_PAGE_SIZE
from app.web.rendering import Renderer

ViewKind = Literal["dashboard", "wall", "item", "events"]
VIEW_KINDS: tuple[ViewKind, ...] = ("dashboard", "wall", "item", "events")


@dataclass(frozen=True)
class View:
    kind: ViewKind
    q: str = ""
    location: str | None = None
    item_id: str | None = None
    levels_page: int = 1

    def matches(self, item: ItemSummary) -> bool:
        """Whether the item matches this page's search."""
        q = self.q.lower()
        return not q or q in item.sku.lower() or q in item.name.lower()

    @property
    def subscription(self) -> Subscription:
        if self.kind == "item" and self.item_id:
            return Subscription(item_id=self.item_id)
        if self.kind in ("dashboard", "wall") and self.location:
            return Subscription(locations=frozenset({self.location}))
        return CHAIN_WIDE


class LiveUpdates:
    # Items are read through the query service of each stream (cache first, like the API).
    def __init__(self, renderer: Renderer) -> None:
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
        item = await self._shown(change, view, queries)
        if item is None:
            return render(template, removed=True, item_id=change.item_id, **context)
        return render(template, item=item, **context)

    async def _shown(self, change: ItemChange, view: View, queries: QueryService) -> ItemSummary | None:
        """The item as this row or tile shows it after the change; None when the page should not
        show it (deleted, not matching the search, not stocked at the page's location)."""
        summary = change.item
        if change.deleted or summary is None or not view.matches(summary):
            return None
        if not view.location:
            return summary  # the chain's list shows the totals the change carries
        level = next((lv for lv in change.levels if lv.location == view.location), None)
        if level is not None:
            return at_location(with_levels(summary, [level]), view.location)
        # A change without this location's level (an edit, a delete): the level it shows is
        # read, cache-first, like the page read it.
        try:
            stored = await queries.item(change.item_id, [view.location])
        except ItemNotFound:
            return None
        if not any(lv.location == view.location for lv in stored.locations):
            return None
        return at_location(stored, view.location)

    async def _item_panel(self, item_id: str, view: View, context: dict[str, Any], queries: QueryService) -> str:
        if item_id != view.item_id:
            return ""
        try:
            # The page of levels the page shows, as app/web/pages.py reads it.
            detail = await queries.item_detail(
                item_id, history_rows=HISTORY_ROWS, levels_page=view.levels_page, levels_page_size=LEVELS_PAGE_SIZE
            )
        except ItemNotFound:
            return ""
        return self._renderer.render(
            "partials/oob_item_panel.html",
            item=detail.item,
            deleted=detail.deleted,
            history=detail.history,
            levels=detail.levels,
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
        levels_page=_levels_page(params.get("levels_page")),
    )
    context = {**site_context(settings), **role_context(request.user), "location": view.location}
    lease = change_stream.limiter.open(request.user)  # the same cap as the API's stream
    stream = change_stream.items(None, view.subscription)
    return ServerSentEvent(leased(lease, live_updates.messages(stream, view, context, queries)))


def _levels_page(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or "1"), 100_000))
    except ValueError:
        return 1
