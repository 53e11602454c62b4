"""The pages (served by the query service): login, dashboard, item, events, stock wall, and the
fragments they reload after a reconnection."""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.utils.scope.state import ScopeState

from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import InvalidToken, Principal, TokenService
from app.auth.users import UserStore
from app.commands.outcomes import CommandStatus
from app.domain.commands import UUID_PATTERN
from app.domain.views import item_view
from app.http.auth import PUBLIC, SESSION_COOKIE, requires
from app.http.errors import ApiError
from app.http.system import LoginRateLimiter
from app.jsontext import change_record, json_object
from app.reader import SORTS, InventoryReader, ItemPage
from app.settings import Settings
from app.web.context import page_context, site_context
from app.web.labels import badge_context

PAGE_SIZE = 25
WALL_TILES = 200
HISTORY_ROWS = 30


def _safe_next(target: str | None) -> str:
    """Only local paths: a login link must not send people elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _location(raw: str | None, settings: Settings) -> str | None:
    code = (raw or "").strip().upper()
    return code if code in settings.locations else None


class LoginController(Controller):
    path = "/"
    opt = {PUBLIC: True}
    include_in_schema = False

    @get("/login")
    async def login_page(self, request: Request[Any, Any, Any], settings: NamedDependency[Settings]) -> Template:
        return Template(
            "login.html",
            context={
                **site_context(settings),
                "csrf": ScopeState.from_scope(request.scope).csrf_token or "",
                "next": _safe_next(request.query_params.get("next")),
                "username": "",
                "error": None,
            },
        )

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        users: NamedDependency[UserStore],
        tokens: NamedDependency[TokenService],
        login_limiter: NamedDependency[LoginRateLimiter],
    ) -> Response[Any]:
        form = await request.form()
        username = str(form.get("username", "")).strip().lower()[:64]
        password = str(form.get("password", ""))[:1024]
        target = _safe_next(str(form.get("next", "/")))
        error = None
        try:
            login_limiter.check(username, request.client.host if request.client else "-")
            principal = await users.authenticate(username, password)
            if principal is None:
                error = "Wrong username or password."
        except ApiError as exc:
            error = "Too many attempts. Wait a minute and try again."
            principal = None
            status = exc.status
        if principal is None:
            return Template(
                "login.html",
                status_code=status if error and error.startswith("Too many") else 401,
                context={
                    **site_context(settings),
                    "csrf": ScopeState.from_scope(request.scope).csrf_token or "",
                    "next": target,
                    "username": username,
                    "error": error,
                },
            )
        issued = tokens.issue(principal)
        response: Response[Any] = Redirect(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            issued.token,
            max_age=issued.expires_in,
            httponly=True,
            samesite="lax",
            secure=settings.env == "prod",
            path="/",
        )
        return response

    @post("/logout", status_code=303)
    async def logout(
        self,
        request: Request[Any, Any, Any],
        tokens: NamedDependency[TokenService],
        revocations: NamedDependency[Revocations],
    ) -> Response[Any]:
        # The session ends on the server too: a copy of the cookie is refused from now on.
        with contextlib.suppress(InvalidToken):
            await revocations.end_session(tokens.verify(request.cookies.get(SESSION_COOKIE, "")))
        response: Response[Any] = Redirect("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


class PageController(Controller):
    path = "/"
    guards = [requires(Role.VIEWER)]
    include_in_schema = False

    async def _page(self, reader: InventoryReader, filters: dict[str, Any]) -> ItemPage:
        return await reader.list_items(
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
        return {
            "q": (params.get("q") or "").strip()[:100],
            "location": _location(params.get("location"), settings),
            "sort": sort if sort in SORTS else "sku",
            "page": max(1, min(page, 100_000)),
        }

    @get("/")
    async def dashboard(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        filters = self._filters(request, settings)
        result = await self._page(reader, filters)
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
                **filters,
            ),
        )

    @get("/ui/rows")
    async def rows(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        filters = self._filters(request, settings)
        result = await self._page(reader, filters)
        return Template(
            "partials/item_rows.html", context=page_context(request, settings, page_result=result, **filters)
        )

    @get("/items/{item_id:str}")
    async def item_page(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        return Template(
            "item.html", context=page_context(request, settings, nav="item", **await self._item(reader, item_id))
        )

    @get("/ui/items/{item_id:str}/panel")
    async def item_panel(
        self,
        request: Request[Principal, Any, Any],
        item_id: FromPath[str],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        context = page_context(request, settings, **await self._item(reader, item_id))
        return Template("partials/item_panel.html", context=context)

    async def _item(self, reader: InventoryReader, item_id: str) -> dict[str, Any]:
        item = await reader.item(item_id.lower()) if UUID_PATTERN.match(item_id) else None
        if item is None:
            raise ApiError(404, "no such item")
        view = item_view(item)
        view["deleted"] = item.deleted
        history = await reader.history(item.id, limit=HISTORY_ROWS, before=None)
        return {"item": view, "history": history, "location": None}

    @get("/events")
    async def events_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        _, newest = await reader.seq_range()
        rows = await reader.changes_after(max(0, newest - 100), 100)
        changes = [json_object(change_record(seq, payload)) for seq, _, payload in reversed(rows)]
        user = request.user
        dead_letters = await reader.dead_letters(limit=50) if user.can(Role.ADMIN) else []
        return Template(
            "events.html",
            context=page_context(request, settings, nav="events", changes=changes, dead_letters=dead_letters),
        )

    @get("/wall")
    async def wall(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        location = _location(request.query_params.get("location"), settings) or settings.default_location
        return Template(
            "wall.html",
            context=page_context(request, settings, location=location, items=await _wall_items(reader, location)),
        )

    @get("/ui/tiles")
    async def tiles(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        location = _location(request.query_params.get("location"), settings) or settings.default_location
        return Template(
            "partials/tiles.html", context=page_context(request, settings, items=await _wall_items(reader, location))
        )

    @get("/ui/commands/{command_id:str}/badge")
    async def badge(
        self,
        request: Request[Principal, Any, Any],
        command_id: FromPath[str],
        settings: NamedDependency[Settings],
        status: NamedDependency[CommandStatus],
    ) -> Template:
        found = await status.get(command_id.lower(), request.user) if UUID_PATTERN.match(command_id) else None
        if found is None:
            raise ApiError(404, "no such command")
        return Template("partials/badge_state.html", context=page_context(request, settings, **badge_context(found)))


async def _wall_items(reader: InventoryReader, location: str) -> list[dict[str, Any]]:
    # Narrowed to the location by the reader: a tile shows what this store has.
    page = await reader.list_items(page=1, page_size=WALL_TILES, q=None, location=location, sort="name")
    return page.items
