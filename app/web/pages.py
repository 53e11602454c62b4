"""The item pages (served by the query service): dashboard, item, transfers and reservations,
and the fragments they reload after a reconnection. The other slices have their own modules:
wall.py, low_stock.py, audit.py (events), people.py, kiosk.py, login.py.

Items are read through the query service like the API reads them: one item cache first (with
the same freshness floor), lists from SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.commands.outcomes import CommandStatus
from app.domain import rules
from app.domain.records import ItemSummary, ReservationView, TransferView
from app.domain.reservations import REFERENCE_MAX
from app.http.auth import requires
from app.http.errors import ApiError
from app.queries.service import ItemNotFound, QueryService, RecordPage
from app.reader import SORTS, InventoryReader, ItemPage
from app.settings import Settings
from app.web.context import home_location, page_context
from app.web.labels import RESERVATION_STATES, TRANSFER_STATES, badge_context
from app.web.rendering import HISTORY_PAGE

PAGE_SIZE = 25
HISTORY_ROWS = HISTORY_PAGE
LEVELS_PAGE_SIZE = 50
RECORD_ROWS = 25


def _location(raw: str | None, settings: Settings) -> str | None:
    code = rules.normalise_location(raw)
    return code if code in settings.locations else None


class PageController(Controller):
    path = "/"
    guards = [requires(Role.VIEWER)]
    include_in_schema = False

    async def _page(self, queries: QueryService, filters: dict[str, Any]) -> ItemPage:
        return await queries.list_items(
            page=filters["page"], page_size=PAGE_SIZE, q=filters["q"] or None, location=filters["location"],
            sort=filters["sort"],
        )  # fmt: skip

    def _filters(self, request: Request[Any, Any, Any], settings: Settings) -> dict[str, Any]:
        params = request.query_params
        sort = params.get("sort", "sku")
        try:
            page = int(params.get("page", "1"))
        except ValueError:
            page = 1
        location = _location(params.get("location"), settings)
        if "location" not in params and isinstance(request.user, Principal) and request.user.locations:
            # A store-limited user's dashboard opens on its store; "All locations" (location=) stays all.
            location = home_location(request.user, settings)
        return {
            "q": (params.get("q") or "").strip()[:100],
            "location": location,
            "sort": sort if sort in SORTS else "sku",
            "page": max(1, min(page, 100_000)),
        }

    @get("/")
    async def dashboard(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Template:
        filters = self._filters(request, settings)
        result = await self._page(queries, filters)
        base = {key: filters[key] for key in ("q", "location", "sort") if filters[key]}

        def page_link(number: int) -> str:
            return urlencode({**base, "page": number})

        return Template(
            "dashboard.html",
            context=page_context(
                request,
                settings,
                nav="dashboard",
                page_result=result,
                page_link=page_link,
                query_string=urlencode({**base, "page": filters["page"]}),
                # The CSV exports take the list's filters (not its sort: they are in SKU order).
                export_query=urlencode({key: filters[key] for key in ("q", "location") if filters[key]}),
                **filters,
            ),
        )

    @get("/ui/rows")
    async def rows(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Template:
        filters = self._filters(request, settings)
        result = await self._page(queries, filters)
        return Template(
            "partials/item_rows.html", context=page_context(request, settings, page_result=result, **filters)
        )

    @get("/items/{item_id:str}")
    async def item_page(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        context = await self._item(queries, item_id, _levels_page(request))
        before = _history_cursor(request.query_params.get("before"))
        if before is not None:
            context |= await _older_history(queries, reader, context["item"].id, before)
        return Template("item.html", context=page_context(request, settings, nav="item", **context))

    @get("/ui/items/{item_id:str}/panel")
    async def item_panel(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Template:
        context = page_context(request, settings, **await self._item(queries, item_id, _levels_page(request)))
        return Template("partials/item_fragment.html", context=context)

    async def _item(self, queries: QueryService, item_id: str, levels_page: int) -> dict[str, Any]:
        stored_id = rules.normalise_uuid(item_id)
        try:
            if stored_id is None:
                raise ItemNotFound(item_id)
            # One entry more than a page: whether there are older ones, for the "Older" link.
            detail = await queries.item_detail(
                stored_id, history_rows=HISTORY_ROWS + 1, levels_page=levels_page, levels_page_size=LEVELS_PAGE_SIZE
            )
        except ItemNotFound:
            raise ApiError(404, "no such item") from None
        return {
            "item": detail.item,
            "deleted": detail.deleted,
            "history": detail.history[:HISTORY_ROWS],
            "history_more": len(detail.history) > HISTORY_ROWS,
            "levels": detail.levels,
            "transfers": detail.transfers,
            "reservations": detail.reservations,
            "location": None,
        }

    @get("/transfers")
    async def transfers_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Template:
        context = await _transfers(request, settings, queries)
        return Template("transfers.html", context=page_context(request, settings, nav="transfers", **context))

    @get("/ui/transfers/rows")
    async def transfer_rows(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Template:
        context = await _transfers(request, settings, queries)
        return Template("partials/transfer_rows.html", context=page_context(request, settings, **context))

    @get("/reservations")
    async def reservations_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Template:
        context = await _reservations(request, settings, queries)
        return Template("reservations.html", context=page_context(request, settings, nav="reservations", **context))

    @get("/ui/reservations/rows")
    async def reservation_rows(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Template:
        context = await _reservations(request, settings, queries)
        return Template("partials/reservation_rows.html", context=page_context(request, settings, **context))

    @get("/ui/commands/{command_id:str}/badge")
    async def badge(
        self,
        request: Request[Principal, Any, Any],
        command_id: FromPath[str],
        settings: NamedDependency[Settings],
        status: NamedDependency[CommandStatus],
    ) -> Template:
        stored_id = rules.normalise_uuid(command_id)
        found = await status.get(stored_id, request.user) if stored_id is not None else None
        if found is None:
            raise ApiError(404, "no such command")
        context = page_context(request, settings, **badge_context(found))
        return Template("partials/badge_state.html", context=context)


def _history_cursor(raw: str | None) -> int | None:
    """The history page's cursor: entries older than this history id (None: the newest page)."""
    try:
        before = int(raw or "")
    except ValueError:
        return None
    return before if 0 < before < 2**62 else None


async def _older_history(queries: QueryService, reader: InventoryReader, item_id: str, before: int) -> dict[str, Any]:
    """An older page of the item's history: the entries before the cursor, whether there are older
    ones still, and the cursor of the newer page (None: the newest page, which has no cursor). The
    newest page stays live; an older one does not change (entries are only ever added on top)."""
    entries = await queries.history(item_id, limit=HISTORY_ROWS + 1, before=before)
    newer = await reader.history_newer_cursor(item_id, after=entries[0].id, limit=HISTORY_ROWS) if entries else None
    return {
        "history": entries[:HISTORY_ROWS],
        "history_more": len(entries) > HISTORY_ROWS,
        "history_before": before,
        "history_newer": newer,
    }


def _levels_page(request: Request[Any, Any, Any]) -> int:
    # The item page shows its levels a page at a time: a chain item has one per store.
    try:
        return max(1, min(int(request.query_params.get("levels_page", "1")), 100_000))
    except ValueError:
        return 1


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or "1"), 100_000))
    except ValueError:
        return 1


def record_filters(request: Request[Any, Any, Any], settings: Settings, states: tuple[str, ...]) -> dict[str, Any]:
    """The filters of the transfers and reservations pages, as the query string gives them: an
    unknown location or state is no filter, as on the dashboard."""
    params = request.query_params
    state = (params.get("state") or "").strip().lower()
    return {
        "location": _location(params.get("location"), settings),
        "state": state if state in states else None,
        "reference": (params.get("reference") or "").strip()[:REFERENCE_MAX] or None,
        "item_id": rules.normalise_uuid(params.get("item_id") or ""),
        "page": _page_number(params.get("page")),
    }


def _links(filters: dict[str, Any]) -> tuple[Callable[[int], str], str]:
    """The link to another page of the same list, and the query string of this one."""
    base = {key: filters[key] for key in ("location", "state", "reference", "item_id") if filters.get(key)}

    def page_link(number: int) -> str:
        return urlencode({**base, "page": number})

    return page_link, urlencode({**base, "page": filters["page"]})


async def _item_summaries(queries: QueryService, item_ids: set[str]) -> dict[str, ItemSummary]:
    """The items a list of transfers or reservations names (cache first), for their SKU and name;
    a deleted one is left out (the row then shows its id)."""

    async def one(item_id: str) -> ItemSummary | None:
        try:
            return await queries.item(item_id, ())
        except ItemNotFound:
            return None

    found = await asyncio.gather(*(one(item_id) for item_id in sorted(item_ids)))
    return {item.id: item for item in found if item is not None}


async def _transfers(request: Request[Any, Any, Any], settings: Settings, queries: QueryService) -> dict[str, Any]:
    filters = record_filters(request, settings, tuple(code for code, _ in TRANSFER_STATES))
    found = await queries.transfers(
        item_id=filters["item_id"], location=filters["location"], state=filters["state"], page=filters["page"],
        page_size=RECORD_ROWS,
    )  # fmt: skip
    return await _record_page(queries, filters, found, "/transfers", "transfers")


async def _reservations(request: Request[Any, Any, Any], settings: Settings, queries: QueryService) -> dict[str, Any]:
    filters = record_filters(request, settings, tuple(code for code, _ in RESERVATION_STATES))
    found = await queries.reservations(
        item_id=filters["item_id"], location=filters["location"], reference=filters["reference"],
        state=filters["state"], page=filters["page"], page_size=RECORD_ROWS,
    )  # fmt: skip
    return await _record_page(queries, filters, found, "/reservations", "reservations")


async def _record_page(
    queries: QueryService,
    filters: dict[str, Any],
    found: RecordPage[TransferView] | RecordPage[ReservationView],
    path: str,
    kind: str,
) -> dict[str, Any]:
    page_link, query_string = _links(filters)
    named = {row.item_id for row in found.rows} | ({filters["item_id"]} if filters["item_id"] else set())
    items = await _item_summaries(queries, named)
    return {
        **filters,
        kind: found.rows,
        "items": items,
        "filtered_item": items.get(filters["item_id"] or ""),
        "page_result": found,
        "page_path": path,
        "page_link": page_link,
        "query_string": query_string,
        "export_query": urlencode(
            {key: filters[key] for key in ("location", "state", "reference", "item_id") if filters.get(key)}
        ),
        "transfer_states": TRANSFER_STATES,
        "reservation_states": RESERVATION_STATES,
    }
