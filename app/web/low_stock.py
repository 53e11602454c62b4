"""The low-stock page (/low-stock): every level low or out across the chain (or one store),
most urgent first, each with the store that has the most of the item to spare, and the recent
stock alerts there (app/domain/alerts.py); live."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain import rules
from app.domain.low_stock import LowStockRow
from app.domain.records import ItemChange
from app.http.auth import requires
from app.queries.service import QueryService
from app.reader import AlertEntry, InventoryReader
from app.settings import Settings
from app.web.context import page_context
from app.web.rendering import Renderer

LOW_STOCK_ROWS = 50
# "Recent alerts": the newest few; live ones go on top (app.css shows no more than these).
RECENT_ALERTS = 20


def low_stock_filters(request: Request[Any, Any, Any], settings: Settings) -> dict[str, Any]:
    """The page's store (an unknown one is no filter, as on the other lists) and page number."""
    params = request.query_params
    code = rules.normalise_location(params.get("location"))
    try:
        page = max(1, min(int(params.get("page") or "1"), 100_000))
    except ValueError:
        page = 1
    return {"location": code if code in settings.locations else None, "page": page}


async def recent_alerts(reader: InventoryReader, location: str | None) -> list[AlertEntry]:
    return await reader.alerts(locations=[location] if location else None, kind=None, before=None, limit=RECENT_ALERTS)


async def _low_stock_context(
    request: Request[Any, Any, Any], settings: Settings, queries: QueryService, reader: InventoryReader
) -> dict[str, Any]:
    filters = low_stock_filters(request, settings)
    location = filters["location"]
    found = await queries.low_stock(
        locations=[location] if location else None,
        default_threshold=settings.low_stock_threshold,
        page=filters["page"],
        page_size=LOW_STOCK_ROWS,
    )
    base = {"location": location} if location else {}

    def page_link(number: int) -> str:
        return urlencode({**base, "page": number})

    return {
        **filters,
        "alerts": await recent_alerts(reader, location),
        "rows": found.rows,
        "page_result": found,
        "page_path": "/low-stock",
        "page_link": page_link,
        "query_string": urlencode({**base, "page": filters["page"]}),
        "low_home": "#low-rows" if filters["page"] == 1 else "",
    }


class LowStockPageController(Controller):
    path = "/"
    guards = [requires(Role.VIEWER)]
    include_in_schema = False

    @get("/low-stock")
    async def low_stock_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        context = await _low_stock_context(request, settings, queries, reader)
        return Template("low_stock.html", context=page_context(request, settings, nav="low-stock", **context))

    @get("/ui/low-stock/rows")
    async def low_stock_rows(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        context = await _low_stock_context(request, settings, queries, reader)
        return Template("partials/low_stock_rows.html", context=page_context(request, settings, **context))

    @get("/ui/low-stock/alerts")
    async def low_stock_alerts(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        """The recent alerts again (after a reconnection)."""
        location = low_stock_filters(request, settings)["location"]
        alerts = await recent_alerts(reader, location)
        return Template(
            "partials/alert_list.html", context=page_context(request, settings, alerts=alerts, location=location)
        )


async def render_low_stock(
    renderer: Renderer,
    change: ItemChange,
    *,
    locations: frozenset[str],
    first_page: bool,
    default_threshold: int,
    queries: QueryService,
    context: dict[str, Any],
) -> str:
    """What a change does to a live low-stock page: each changed level that is low or out is
    updated in place (or added on top of the first page), one that recovered leaves; the item's
    other low rows are redrawn in place, since their best source may have moved. A deleted item
    leaves the page. The alerts the change raised at the page's locations go on top of its
    recent alerts."""
    render = renderer.render
    if change.deleted or change.item is None:
        return render("partials/oob_low_stock.html", removed_item=change.item_id, **context)
    alerts = [alert for alert in change.alerts if alert.location in locations]
    news = render("partials/oob_alerts.html", alerts=alerts, alert_name=change.item.name, **context) if alerts else ""
    changed = {level.location for level in change.levels if level.location in locations}
    rows = await queries.low_stock_rows_of_item(change.item, locations, default_threshold)
    low_at = {row.location for row in rows}
    parts: list[str] = []
    if not change.levels:
        # An edit (a threshold, a name): the item's rows are drawn again from what is stored.
        parts.append(render("partials/oob_low_stock.html", removed_item=change.item_id, **context))
        changed = low_at
    parts += [
        render("partials/oob_low_stock.html", removed=(change.item_id, location), **context)
        for location in sorted(changed - low_at)
    ]
    home = "#low-rows" if first_page else ""
    parts += [_row(render, row, home if row.location in changed else "", context) for row in rows]
    return "".join(parts) + news


def _row(render: Any, row: LowStockRow, home: str, context: dict[str, Any]) -> str:
    return str(render("partials/oob_low_stock.html", row=row, low_home=home, **context))
