"""The pages' live stream: each change rendered with the same partials the pages use, sent as
out-of-band swaps (one hidden sink per page; see "Live streams" in docs/decisions.md).

Rows and tiles are sent as replacements of themselves; one that is not on the page yet is
appended to its container by static/app.js (it carries ``data-home``). After every
(re)connection the page is told to ``resync`` and reloads its fragment, so nothing missed while
disconnected stays missed. All markup is in ``templates/partials/oob_*.html``.

Each page subscribes to what it shows (``app/queries/feed.py:Subscription``): a wall and a
store's dashboard to their location, the chain's dashboard to the chain (item totals, no
levels), an item page to its item. So a wall's stream carries its store's changes, the item
edits and deletes that every store shows, and nothing of the other stores. The events page
subscribes to every location, so an item's entry can say which transfers and reservations the
change moved. The transfers and reservations pages subscribe to one item when they list one
item's, else to every location: a transfer concerns two, and its receipt changes only the level
at its destination, so a page of one store's transfers still has to see a cancellation at the
other end. Their rows are replaced in place, added on top of the first page when they match its
filters, and removed when they no longer do.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import Any, Literal

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain import rules
from app.domain.records import Change, ItemChange, ItemSummary, OutcomeChange, ReservationView, TransferView
from app.domain.views import at_location, with_levels
from app.http.auth import requires
from app.http.stream_limits import leased
from app.queries.feed import CHAIN_WIDE, Subscription
from app.queries.service import ItemNotFound, QueryService
from app.queries.stream import RETRY_MS, ChangeStream, StreamItem
from app.settings import Settings
from app.web.context import role_context, site_context
from app.web.labels import RESERVATION_STATES, TRANSFER_STATES, badge_context
from app.web.pages import HISTORY_ROWS, LEVELS_PAGE_SIZE, record_filters
from app.web.rendering import Renderer

ViewKind = Literal["dashboard", "wall", "item", "events", "transfers", "reservations"]
VIEW_KINDS: tuple[ViewKind, ...] = ("dashboard", "wall", "item", "events", "transfers", "reservations")
RECORD_KINDS = ("transfers", "reservations")


@dataclass(frozen=True)
class View:
    kind: ViewKind
    q: str = ""
    location: str | None = None
    item_id: str | None = None
    levels_page: int = 1
    # The transfers and reservations pages: their filters and page, and every location there is.
    state: str | None = None
    reference: str | None = None
    page: int = 1
    every_location: frozenset[str] = frozenset()

    def matches(self, item: ItemSummary) -> bool:
        """Whether the item matches this page's search."""
        q = self.q.lower()
        return not q or q in item.sku.lower() or q in item.name.lower()

    def lists_transfer(self, transfer: TransferView) -> bool:
        if self.kind == "item":
            return transfer.state == "in_transit"
        return (
            (self.location is None or self.location in (transfer.from_location, transfer.to_location))
            and (self.state is None or transfer.state == self.state)
            and (self.item_id is None or transfer.item_id == self.item_id)
        )

    def lists_reservation(self, reservation: ReservationView) -> bool:
        if self.kind == "item":
            return reservation.state == "open"
        return (
            (self.location is None or reservation.location == self.location)
            and (self.state is None or reservation.state == self.state)
            and (self.reference is None or reservation.reference == self.reference)
            and (self.item_id is None or reservation.item_id == self.item_id)
        )

    @property
    def subscription(self) -> Subscription:
        if self.kind in ("item", *RECORD_KINDS) and self.item_id:
            return Subscription(item_id=self.item_id)
        if self.kind in (*RECORD_KINDS, "events") and self.every_location:
            return Subscription(locations=self.every_location)
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
            return await self._item_panel(change, view, context, queries)
        if view.kind in RECORD_KINDS:
            return self._record_rows(change, view, context)
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

    def _record_rows(self, change: ItemChange, view: View, context: dict[str, Any]) -> str:
        """The rows of the transfers or reservations page this change made or changed."""
        shared = {**context, "show_item": True, "can_act": context["can_move_stock"], "item": change.item}
        render = self._renderer.render
        if view.kind == "transfers":
            home = {"transfers_home": "#transfer-rows"} if view.page == 1 else {}
            return "".join(
                render("partials/oob_transfer.html", transfer=t, shown=view.lists_transfer(t), **home, **shared)
                for t in change.transfers
            )
        home = {"reservations_home": "#reservation-rows"} if view.page == 1 else {}
        return "".join(
            render("partials/oob_reservation.html", reservation=r, shown=view.lists_reservation(r), **home, **shared)
            for r in change.reservations
        )

    async def _item_panel(self, change: ItemChange, view: View, context: dict[str, Any], queries: QueryService) -> str:
        item_id = change.item_id
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
            # Only what this change made or changed: the other rows stay as they are (and what
            # someone is typing into them).
            changed_transfers=[(t, view.lists_transfer(t)) for t in change.transfers],
            changed_reservations=[(r, view.lists_reservation(r)) for r in change.reservations],
            show_item=False,
            can_act=context["can_move_stock"] and not detail.deleted,
            transfers_home="#open-transfers",
            reservations_home="#open-reservations",
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
    if kind == "events":
        view = replace(view, every_location=frozenset(settings.locations))
    if kind in RECORD_KINDS:
        states = TRANSFER_STATES if kind == "transfers" else RESERVATION_STATES
        filters = record_filters(request, settings, tuple(code for code, _ in states))
        view = replace(
            view,
            state=filters["state"],
            reference=filters["reference"],
            page=filters["page"],
            every_location=frozenset(settings.locations),
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
