"""The pages' live stream: each change rendered with the same partials the pages use, sent as
out-of-band swaps (one hidden sink per page; see "Live streams" in docs/decisions.md).

Rows and tiles are sent as replacements of themselves; one that is not on the page yet is
appended to its container by static/app.js (it carries ``data-home``). After every
(re)connection the page is told to ``resync`` and reloads its fragment, so nothing missed while
disconnected stays missed. All markup is in ``templates/partials/oob_*.html``.

Each page subscribes to what it shows (``app/queries/feed.py:Subscription``): a wall and a
store's dashboard to their location, the chain's dashboard to the chain (item totals, no
levels), an item page to its item. So a wall's stream carries its stores' changes, the item
edits and deletes that every store shows, and nothing of the other stores. The audit log
(events) and the low-stock page subscribe to every location: an audit entry may be anywhere,
and a low level's best source is any store. The transfers and reservations pages subscribe to
one item when they list one item's, else to every location: a transfer concerns two, and its
receipt changes only the level at its destination, so a page of one store's transfers still has
to see a cancellation at the other end. Their rows are replaced in place, added on top of the
first page when they match its filters, and removed when they no longer do.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import Any, Literal

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain import rules, search
from app.domain.audit import AuditFilters
from app.domain.records import Change, ItemChange, ItemSummary, OutcomeChange, ReservationView, TransferView
from app.domain.views import at_location, with_levels
from app.domain.wall import WallOptions, shown_on, sku_on
from app.http.auth import requires
from app.http.errors import ApiError
from app.http.stream_end import until_ended
from app.http.stream_limits import leased
from app.queries.feed import CHAIN_WIDE, Subscription
from app.queries.service import ItemNotFound, QueryService
from app.queries.stream import RETRY_MS, ChangeStream, StreamItem
from app.settings import Settings
from app.web.audit import audit_filters, follower_for, render_entries
from app.web.context import role_context, site_context
from app.web.labels import RESERVATION_STATES, TRANSFER_STATES, badge_context
from app.web.low_stock import render_low_stock
from app.web.pages import HISTORY_ROWS, LEVELS_PAGE_SIZE, record_filters
from app.web.rendering import Renderer
from app.web.wall import WallRefused, wall_options

ViewKind = Literal["dashboard", "wall", "item", "events", "transfers", "reservations", "low-stock"]
VIEW_KINDS: tuple[ViewKind, ...] = (
    "dashboard", "wall", "item", "events", "transfers", "reservations", "low-stock",
)  # fmt: skip
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
    # The audit log (events): its filters (None: they were bad, so the page follows nothing).
    audit: AuditFilters | None = None
    # The wall: its stores and what it shows (app/web/wall.py parses them like the page does).
    wall: WallOptions | None = None

    def matches(self, item: ItemSummary) -> bool:
        """Whether the item matches this page's search: the list's rule (app/domain/search.py)."""
        return search.matches(search.search_words(self.q), item.sku, item.name)

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
        if self.kind == "low-stock":
            # Every store's levels, even on one store's page: the best source is any store.
            return Subscription(locations=self.every_location)
        if self.kind in (*RECORD_KINDS, "events") and self.every_location:
            return Subscription(locations=self.every_location)
        if self.kind == "wall" and self.wall is not None:
            return Subscription(locations=frozenset(self.wall.locations))
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
        # The audit log reads what each change wrote after what the page already shows.
        follower = await follower_for(view.audit, queries) if view.kind == "events" else None
        async for item in items:
            if item.kind in ("hello", "reset"):
                yield ServerSentEventMessage(data="resync", event="resync", retry=RETRY_MS)
            elif item.kind == "ping":
                yield ServerSentEventMessage(comment="ping")
            elif item.kind == "change" and follower is not None:
                entries = await follower.entries(item.change(), queries)
                if entries:
                    yield ServerSentEventMessage(
                        data=render_entries(self._renderer, entries, context), event="update", id=str(item.seq)
                    )
            elif item.kind == "change":
                html = await self.render(item.change(), view, context, queries)
                if html:
                    yield ServerSentEventMessage(data=html, event="update", id=str(item.seq))

    async def render(self, change: Change, view: View, context: dict[str, Any], queries: QueryService) -> str:
        render = self._renderer.render
        if view.kind == "low-stock":
            if isinstance(change, OutcomeChange):
                return ""
            return await render_low_stock(
                self._renderer, change, locations=frozenset({view.location}) if view.location else view.every_location,
                first_page=view.page == 1, default_threshold=context["low_stock_default"], queries=queries,
                context=context,
            )  # fmt: skip
        if isinstance(change, OutcomeChange):
            if view.kind == "wall":
                return ""
            return render("partials/oob_badge.html", **context, **badge_context(change))
        if view.kind == "item":
            return await self._item_panel(change, view, context, queries)
        if view.kind in RECORD_KINDS:
            return self._record_rows(change, view, context)
        if view.kind == "wall" and view.wall is not None:
            return await self._wall_tiles(change, view.wall, context, queries) + self._wall_alert(
                change, view.wall, context
            )
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

    async def _wall_tiles(
        self, change: ItemChange, wall: WallOptions, context: dict[str, Any], queries: QueryService
    ) -> str:
        """The wall's tiles this change touched, one per item and wall location, each as the page
        shows it, or its removal (a deleted item; a level that no longer needs attention on an
        attention-only wall). Where it goes when it is not on screen is static/wall.js's part."""
        render = self._renderer.render
        shared = {**context, "wall": wall, "several": wall.several}
        summary = change.item
        if summary is not None and not sku_on(wall, summary.sku):
            return ""  # another department's item (a SKU does not change)
        if change.deleted or summary is None:
            return "".join(
                render("partials/oob_tile.html", removed=True, item_id=change.item_id, tile_location=code, **shared)
                for code in wall.locations
            )
        levels = [level for level in change.levels if level.location in wall.locations]
        if levels:
            tiles = [at_location(with_levels(summary, [level]), level.location) for level in levels]
        else:
            # An edit (a new name or threshold) carries no levels: the wall's are read, cache-first.
            try:
                stored = await queries.item(change.item_id, list(wall.locations))
            except ItemNotFound:
                return ""
            tiles = [
                at_location(msgspec.structs.replace(stored, locations=[lv]), lv.location) for lv in stored.locations
            ]
        threshold = context["low_stock_default"]
        parts = []
        for tile in tiles:
            if shown_on(wall, tile.available, tile.low_stock_threshold, threshold):
                parts.append(render("partials/oob_tile.html", item=tile, **shared))
            else:
                gone = {"removed": True, "item_id": tile.id, "tile_location": tile.locations[0].location}
                parts.append(render("partials/oob_tile.html", **gone, **shared))
        return "".join(parts)

    def _wall_alert(self, change: ItemChange, wall: WallOptions, context: dict[str, Any]) -> str:
        """The wall's alert line, when the change raised an alert at its stores (of its SKUs): the
        newest one, as the wall's fragment draws it (templates/partials/wall_alert.html)."""
        alerts = [a for a in change.alerts if a.location in wall.locations and sku_on(wall, a.sku)]
        if not alerts or change.item is None:
            return ""
        return self._renderer.render(
            "partials/wall_alert.html",
            **{**context, "several": wall.several},
            wall_alert=max(alerts, key=lambda alert: alert.id),
            wall_alert_name=change.item.name,
            alert_oob=True,
        )

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
    revocations: NamedDependency[Revocations],
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
        audit, errors = audit_filters(request, settings)
        view = replace(view, every_location=frozenset(settings.locations), audit=None if errors else audit)
    if kind == "low-stock":
        view = replace(view, every_location=frozenset(settings.locations), page=_levels_page(params.get("page")))
    if kind == "wall":
        try:
            wall = wall_options(request, settings)
        except WallRefused as refused:
            raise ApiError(refused.status, refused.message) from None
        view = replace(view, wall=wall, location=wall.locations[0])
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
    context = {**site_context(settings), **role_context(request.user, settings), "location": view.location}
    lease = change_stream.limiter.open(request.user)  # the same cap as the API's stream
    stream = change_stream.items(None, view.subscription)
    messages = live_updates.messages(stream, view, context, queries)
    # Ends with an `ended` event once the session expires or is revoked (app/http/stream_end.py).
    principal = request.user
    return ServerSentEvent(leased(lease, until_ended(messages, lambda: revocations.ended(principal))))


def _levels_page(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or "1"), 100_000))
    except ValueError:
        return 1
