"""Bearer JWT on the API (and the same token in a session cookie for pages); role guards."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware
from litestar.types import Guard

from app.auth.roles import Role
from app.auth.tokens import InvalidToken, Principal, TokenService

SESSION_COOKIE = "inventory_session"
PUBLIC = "public"  # route opt: no authentication needed
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TokenAuthentication(AbstractAuthenticationMiddleware):
    def __init__(self, app: Any, tokens: TokenService, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._tokens = tokens

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise NotAuthorizedException("use an 'Authorization: Bearer <token>' header")
            source = "bearer"
        else:
            token = connection.cookies.get(SESSION_COOKIE, "")
            source = "cookie"
            if not token:
                raise NotAuthorizedException("authentication required")
            # A browser sends the cookie by itself (CSRF): API writes take a bearer token only;
            # the pages' forms post to /ui/..., which checks the CSRF token.
            method = connection.scope.get("method", "GET")
            if method not in SAFE_METHODS and connection.scope["path"].startswith("/api/"):
                raise NotAuthorizedException("API writes need an 'Authorization: Bearer <token>' header")
        try:
            principal = self._tokens.verify(token.strip())
        except InvalidToken as exc:
            raise NotAuthorizedException(str(exc)) from None
        return AuthenticationResult(user=principal, auth=source)


def authentication(tokens: TokenService) -> DefineMiddleware:
    return DefineMiddleware(
        TokenAuthentication, tokens=tokens, exclude_from_auth_key=PUBLIC, exclude=["^/schema", "^/static/"]
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
