"""Bearer JWT on the API (and the same token in a session cookie for pages), wall links in a
cookie of their own, session renewal; role guards.

Which credential counts when a request carries several: the ``Authorization`` header, else the
session cookie, else the wall link's cookie. A session cookie that no longer holds gives way to a
wall link's cookie beside it (a shop's TV someone once logged in on stays a wall).

A wall link (app/auth/kiosk.py) may only read its wall: every other request it makes, on any
role and any route, is refused here with 403, so no route has to remember it.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware
from litestar.middleware._utils import should_bypass_middleware
from litestar.types import Guard, Message, Receive, Scope, Send

from app.auth.kiosk import WALL_ONLY, KioskRefused, kiosk_may
from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import InvalidToken, IssuedToken, Principal, TokenService

SESSION_COOKIE = "inventory_session"
KIOSK_COOKIE = "inventory_kiosk"
# Browsers keep a cookie at most this long (Chrome caps at 400 days): a wall link without expiry.
KIOSK_COOKIE_MAX_AGE = 400 * 86400
# Requests that are not a person's activity: the live streams stay open by themselves, and the
# API is for programs (which hold bearer tokens and log in again).
NOT_ACTIVITY = ("/ui/stream", "/api/")
PUBLIC = "public"  # route opt: no authentication needed
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_cookie(issued: IssuedToken, *, secure: bool) -> Cookie:
    """The pages' session: the token itself, for as long as it is valid, out of scripts' reach."""
    return Cookie(
        key=SESSION_COOKIE,
        value=issued.token,
        max_age=issued.expires_in,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


def kiosk_cookie(credential: str, expires_at: int | None, *, secure: bool, now: float | None = None) -> Cookie:
    """A wall link's cookie: the link's id and secret, until the link expires (or the browser's cap)."""
    max_age = KIOSK_COOKIE_MAX_AGE
    if expires_at is not None:
        max_age = max(1, min(max_age, expires_at - int(time.time() if now is None else now)))
    return Cookie(
        key=KIOSK_COOKIE, value=credential, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )


def renews(principal: Principal, method: str, path: str, now: float) -> bool:
    """Whether a request authenticated by the session cookie gets a fresh one: a person's page
    request (not the stream, not the API) once the token has passed half of its lifetime."""
    if principal.is_kiosk or not principal.expires_at or path.startswith(NOT_ACTIVITY):
        return False
    if method not in ("GET", "POST"):
        return False
    return now >= principal.issued_at + (principal.expires_at - principal.issued_at) / 2


class TokenAuthentication(AbstractAuthenticationMiddleware):
    def __init__(
        self,
        app: Any,
        tokens: TokenService,
        revocations: Revocations | None = None,
        secure_cookies: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._tokens = tokens
        self._revocations = revocations
        self._secure = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The base class's, plus the renewed session cookie on the way out.
        if should_bypass_middleware(
            exclude_http_methods=self.exclude_http_methods,
            exclude_opt_key=self.exclude_opt_key,
            exclude_path_pattern=self.exclude,
            scope=scope,
            scopes=self.scopes,
        ):
            await self.app(scope, receive, send)
            return
        result = await self.authenticate_request(ASGIConnection(scope))
        scope["user"] = result.user
        scope["auth"] = result.auth
        principal = result.user
        method = str(scope.get("method", "GET"))
        if result.auth != "cookie" or not renews(principal, method, scope["path"], time.time()):
            await self.app(scope, receive, send)
            return
        # Same user, epoch and locations; a new session id. The old token simply expires.
        header = session_cookie(self._tokens.issue(principal), secure=self._secure).to_encoded_header()

        async def send_renewed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_renewed)

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        method = str(connection.scope.get("method", "GET"))
        path = connection.scope["path"]
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise NotAuthorizedException("use an 'Authorization: Bearer <token>' header")
            source = "bearer"
        else:
            token = connection.cookies.get(SESSION_COOKIE, "")
            source = "cookie"
            kiosk = connection.cookies.get(KIOSK_COOKIE, "") if self._revocations is not None else ""
            query = connection.scope.get("query_string", b"").decode("latin-1")
            if not token:
                if kiosk:
                    return await self._kiosk(kiosk, method, path, query)
                raise NotAuthorizedException("authentication required")
            # A browser sends the cookie by itself (CSRF): API writes take a bearer token only;
            # the pages' forms post to /ui/..., which checks the CSRF token.
            if method not in SAFE_METHODS and path.startswith("/api/"):
                raise NotAuthorizedException("API writes need an 'Authorization: Bearer <token>' header")
            if kiosk:
                try:
                    return AuthenticationResult(user=self._tokens.verify(token.strip()), auth=source)
                except InvalidToken:
                    return await self._kiosk(kiosk, method, path, query)
        try:
            principal = self._tokens.verify(token.strip())
        except InvalidToken as exc:
            raise NotAuthorizedException(str(exc)) from None
        return AuthenticationResult(user=principal, auth=source)

    async def _kiosk(self, credential: str, method: str, path: str, query: str) -> AuthenticationResult:
        revocations = self._revocations
        assert revocations is not None
        try:
            try:
                principal = revocations.kiosk_principal(credential)
            except KioskRefused as refused:
                # Perhaps made on another process a moment ago: look again, once.
                if refused.reason != "invalid" or not await revocations.catch_up():
                    raise
                principal = revocations.kiosk_principal(credential)
        except KioskRefused as refused:
            # 403, not 401: a TV has nobody to log in; the page shows why instead.
            raise PermissionDeniedException(refused.message) from None
        if not kiosk_may(method, path, query, principal.locations):
            raise PermissionDeniedException(WALL_ONLY)
        return AuthenticationResult(user=principal, auth="kiosk")


def authentication(
    tokens: TokenService, revocations: Revocations | None = None, *, secure_cookies: bool = False
) -> DefineMiddleware:
    return DefineMiddleware(
        TokenAuthentication,
        tokens=tokens,
        revocations=revocations,
        secure_cookies=secure_cookies,
        exclude_from_auth_key=PUBLIC,
        exclude=["^/schema", "^/static/"],
    )


def requires(role: Role) -> Guard:
    # async on purpose: Litestar runs a sync guard in a worker thread, on every request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        user = connection.scope.get("user")
        if not isinstance(user, Principal):
            raise NotAuthorizedException("authentication required")
        if not user.can(role):
            raise PermissionDeniedException(f"this needs the {role.value} role; you are {user.role.value}")

    return guard
