"""The stock wall: a TV across the shop floor showing what needs attention first, a screen at a
time, turning to the next screen on a timer (static/wall.js) and taking live tiles from the
page stream (app/web/live.py).

Everything the wall loads after the page is under /ui/wall/, so a kiosk link (read-only, scoped
to its locations) needs nothing else than the wall, these fragments and the wall's stream. The
options of the URL are the domain's (app/domain/wall.py); bad ones get a page saying what is
wrong, and a kiosk link asking for another store's wall is refused.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.clock import utc_now
from app.domain.wall import (
    DENSITIES,
    ROTATE_DEFAULT,
    ROTATE_MAX,
    ROTATE_MIN,
    WallOptionError,
    WallOptions,
    parse_wall_options,
)
from app.http.auth import requires
from app.http.errors import ApiError
from app.queries.service import QueryService
from app.reader import AlertEntry, InventoryReader, WallPage
from app.settings import Settings
from app.web.context import home_location, page_context


class WallRefused(Exception):
    """A wall URL that cannot be shown: 400 (bad options) or 403 (a kiosk link outside its stores)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def wall_options(request: Request[Principal, Any, Any], settings: Settings) -> WallOptions:
    """The wall's options from the query string, checked against the site and the principal."""
    params = request.query_params
    try:
        options = parse_wall_options(
            {name: params.getall(name) for name in params},
            known=settings.locations,
            # A store-limited user or a kiosk link opens on its (first) store, everyone else on the site's.
            default_location=home_location(request.user, settings),
        )
    except WallOptionError as exc:
        raise WallRefused(400, str(exc)) from None
    refusal = kiosk_refusal(request.user, options)
    if refusal:
        raise WallRefused(403, refusal)
    return options


def kiosk_refusal(user: Principal, options: WallOptions) -> str | None:
    """Why a kiosk link may not show this wall (another store's), or None. People may look at
    any store's wall: the wall is read-only, and a store-limited user is limited in what it
    changes, not in what it sees."""
    if not user.is_kiosk:
        return None
    outside = [code for code in options.locations if not user.may_act_at(code)]
    if not outside:
        return None
    return f"this wall link shows {', '.join(sorted(user.locations))} only, not {', '.join(outside)}"


async def _screen(queries: QueryService, options: WallOptions, settings: Settings) -> WallPage:
    return await queries.wall_page(
        options.locations,
        attention_only=options.attention_only,
        default_threshold=settings.low_stock_threshold,
        page=options.page,
        page_size=options.page_size,
        sku_prefix=options.sku,
    )


async def latest_alert(reader: InventoryReader, options: WallOptions) -> AlertEntry | None:
    """The newest stock alert at the wall's stores (of its SKUs), for the line above the tiles."""
    found = await reader.alerts(locations=options.locations, kind=None, before=None, limit=1, sku_prefix=options.sku)
    return found[0] if found else None


def wall_context(options: WallOptions, screen: WallPage, alert: AlertEntry | None = None) -> dict[str, Any]:
    """What the wall's templates need beside the site's context (the live tiles too)."""
    return {
        "wall_alert": alert,
        "wall_alert_name": alert.name if alert else "",
        "wall": options,
        "several": options.several,
        "screen": screen,
        "items": screen.tiles,
        "tiles_url": "/ui/wall/tiles?" + options.query(),
        "stream_url": "/ui/stream?view=wall&" + options.query(),
        "updated_at": utc_now(),
    }


class WallController(Controller):
    path = "/"
    guards = [requires(Role.VIEWER)]
    include_in_schema = False

    @get("/wall")
    async def wall(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        try:
            options = wall_options(request, settings)
        except WallRefused as refused:
            # A page, not a bare message: whoever set up the TV reads what to fix on it.
            return Template(
                "wall_error.html",
                status_code=refused.status,
                context=page_context(
                    request,
                    settings,
                    message=refused.message,
                    status=refused.status,
                    densities=DENSITIES,
                    rotate=(ROTATE_MIN, ROTATE_MAX, ROTATE_DEFAULT),
                ),
            )
        screen = await _screen(queries, options, settings)
        alert = await latest_alert(reader, options)
        return Template("wall.html", context=page_context(request, settings, **wall_context(options, screen, alert)))

    @get("/ui/wall/tiles")
    async def tiles(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        """One screen of tiles, with the header's counts and page number and the latest alert (out
        of band)."""
        try:
            options = wall_options(request, settings)
        except WallRefused as refused:
            raise ApiError(refused.status, refused.message) from None
        screen = await _screen(queries, options, settings)
        alert = await latest_alert(reader, options)
        return Template(
            "partials/wall_screen.html",
            context=page_context(request, settings, **wall_context(options, screen, alert)),
        )
