"""Wall links in the pages: the admin's page to make and revoke them, and ``/kiosk/<id>.<secret>``,
where a TV opens its link once and becomes that wall (app/auth/kiosk.py).

Opening a link sets the link's cookie (its id and secret: all a wall needs, also after server
restarts) and drops a person's session cookie: the browser is a wall from then on. Logging in
on it again drops the link's cookie (app/web/login.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.utils.scope.state import ScopeState

from app.auth.kiosk import KioskLink, KioskLinkError, KioskLinks, KioskRefused, split_credential, wall_path
from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.http.auth import PUBLIC, SESSION_COOKIE, kiosk_cookie, requires
from app.http.errors import ApiError
from app.settings import Settings
from app.system.kiosk_controller import create_link, link_url
from app.web.context import page_context, site_context


def _expiry(link: KioskLink) -> str:
    if link.expires_at is None:
        return "never"
    return datetime.fromtimestamp(link.expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def _links_page(
    request: Request[Principal, Any, Any],
    settings: Settings,
    links: KioskLinks,
    *,
    status: int = 200,
    **extra: Any,
) -> Template:
    form = {"name": "", "locations": [], "expires_in_days": "", **extra.pop("form", {})}
    extra = {"error": None, "created": None, "created_url": "", **extra}
    return Template(
        "kiosk_links.html",
        status_code=status,
        context=page_context(
            request, settings, nav="kiosk-links", links=await links.list(), form=form, expiry=_expiry, **extra
        ),
    )


class KioskPageController(Controller):
    path = "/"
    include_in_schema = False
    guards = [requires(Role.ADMIN)]

    @get("/kiosk-links")
    async def links_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        kiosk_links: NamedDependency[KioskLinks],
    ) -> Template:
        return await _links_page(request, settings, kiosk_links)

    @post("/kiosk-links", status_code=200)
    async def create(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        kiosk_links: NamedDependency[KioskLinks],
        revocations: NamedDependency[Revocations],
    ) -> Template:
        form = await request.form()
        name = str(form.get("name", ""))[:200]
        locations = [str(code)[:40] for code in form.getall("locations", [])][:100]
        days_text = str(form.get("expires_in_days", "")).strip()[:10]
        kept = {"name": name, "locations": locations, "expires_in_days": days_text}
        try:
            days = int(days_text) if days_text else None
        except ValueError:
            return await _links_page(
                request, settings, kiosk_links, status=400, form=kept,
                error=("expires_in_days", "must be a whole number of days, or empty"),
            )  # fmt: skip
        try:
            link, secret = await create_link(kiosk_links, revocations, settings, request.user, name, locations, days)
        except KioskLinkError as exc:
            return await _links_page(
                request, settings, kiosk_links, status=400, form=kept, error=(exc.field, exc.message)
            )
        # The only time the secret is shown: it is not stored.
        url = link_url(request, link, secret)
        return await _links_page(request, settings, kiosk_links, created=link, created_url=url)

    @post("/kiosk-links/{link_id:str}/revoke", status_code=303)
    async def revoke(
        self,
        link_id: FromPath[str],
        kiosk_links: NamedDependency[KioskLinks],
        revocations: NamedDependency[Revocations],
    ) -> Redirect:
        if await kiosk_links.revoke(link_id.strip().lower()[:64]) is None:
            raise ApiError(404, "no such wall link")
        await revocations.refresh()
        return Redirect("/kiosk-links", status_code=303)


class KioskEntryController(Controller):
    path = "/"
    include_in_schema = False
    opt = {PUBLIC: True}

    @get("/kiosk/{credential:str}")
    async def enter(
        self,
        request: Request[Any, Any, Any],
        credential: FromPath[str],
        settings: NamedDependency[Settings],
        revocations: NamedDependency[Revocations],
    ) -> Response[Any]:
        try:
            link_id, _ = split_credential(credential[:200])
            if not revocations.knows_link(link_id):
                await revocations.catch_up()  # made on another process in the last second
            principal = revocations.kiosk_principal(credential)
        except KioskRefused as refused:
            return Template(
                "kiosk_refused.html",
                status_code=403,
                context={
                    **site_context(settings),
                    "csrf": ScopeState.from_scope(request.scope).csrf_token or "",
                    "message": refused.message,
                },
            )
        response: Response[Any] = Redirect(wall_path(principal.locations), status_code=303)
        response.set_cookie(kiosk_cookie(credential, principal.expires_at or None, secure=settings.env == "prod"))
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"  # the secret is in this URL
        return response
