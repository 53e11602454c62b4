"""Logging in and out of the pages, and ``/ui/session``: whether the page's session still holds.

The session cookie is the token itself (app/http/auth.py), valid as long as the token
(INVENTORY_JWT_TTL) and renewed by the middleware while the person is active. When a page's live
stream ends (app/http/stream_end.py), static/session.js asks ``/ui/session`` whether to reconnect
(the cookie was renewed meanwhile), go to the login page (and come back), or, on a wall opened by
a wall link, show that the link ended.
"""

from __future__ import annotations

import contextlib
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from litestar.utils.scope.state import ScopeState

from app.auth.kiosk import KioskRefused
from app.auth.login_limits import LoginLimiter, LoginRefused
from app.auth.revocation import Revocations
from app.auth.tokens import InvalidToken, TokenService
from app.auth.users import UserStore
from app.http.auth import KIOSK_COOKIE, PUBLIC, SESSION_COOKIE, session_cookie
from app.http.errors import error_body
from app.settings import Settings
from app.web.context import site_context


def _safe_next(target: str | None) -> str:
    """Only local paths: a login link must not send people elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


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

    @staticmethod
    def _login_again(
        request: Request[Any, Any, Any], settings: Settings, target: str, username: str, refused: LoginRefused | None
    ) -> Template:
        """The login page again: 401 after a wrong password, 429 with Retry-After when limited."""
        return Template(
            "login.html",
            status_code=401 if refused is None else 429,
            headers={} if refused is None else {"Retry-After": str(refused.retry_after)},
            context={
                **site_context(settings),
                "csrf": ScopeState.from_scope(request.scope).csrf_token or "",
                "next": target,
                "username": username,
                "error": "Wrong username or password."
                if refused is None
                else "Too many attempts. Wait a minute and try again.",
            },
        )

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        users: NamedDependency[UserStore],
        tokens: NamedDependency[TokenService],
        login_limiter: NamedDependency[LoginLimiter],
    ) -> Response[Any]:
        form = await request.form()
        username = str(form.get("username", "")).strip().lower()[:64]
        password = str(form.get("password", ""))[:1024]
        target = _safe_next(str(form.get("next", "/")))
        address = request.client.host if request.client else "-"
        try:
            principal = await login_limiter.attempt(username, address, lambda: users.authenticate(username, password))
        except LoginRefused as refused:
            return self._login_again(request, settings, target, username, refused)
        if principal is None:
            return self._login_again(request, settings, target, username, None)
        response: Response[Any] = Redirect(target, status_code=303)
        response.set_cookie(session_cookie(tokens.issue(principal), secure=settings.env == "prod"))
        # A person logged in: this browser is no longer a wall (app/auth/kiosk.py).
        response.delete_cookie(KIOSK_COOKIE, path="/")
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
        response.delete_cookie(KIOSK_COOKIE, path="/")
        return response

    @get("/ui/session")
    async def session(
        self,
        request: Request[Any, Any, Any],
        tokens: NamedDependency[TokenService],
        revocations: NamedDependency[Revocations],
    ) -> Response[Any]:
        """200 with the session's kind and expiry while the browser's cookie holds; 401 (the one
        error shape, ``details.kind`` and ``details.reason``) when it does not. Not activity: it
        renews nothing (a public route, outside the middleware)."""
        token = request.cookies.get(SESSION_COOKIE, "")
        if token:
            with contextlib.suppress(InvalidToken):
                principal = tokens.verify(token)
                return Response({"kind": "user", "username": principal.username, "expires_at": principal.expires_at})
        link = request.cookies.get(KIOSK_COOKIE, "")
        if link:
            try:
                principal = revocations.kiosk_principal(link)
            except KioskRefused as refused:
                return _unauthorized(refused.message, "kiosk", refused.reason)
            return Response({"kind": "kiosk", "expires_at": principal.expires_at or None})
        return _unauthorized("your session ended; log in again", "user", "expired" if token else "signed-out")


def _unauthorized(message: str, kind: str, reason: str) -> Response[Any]:
    return Response(
        error_body("Unauthorized", message, {"kind": kind, "reason": reason}),
        status_code=401,
        headers={"Cache-Control": "no-store"},
    )
