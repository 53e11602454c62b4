"""Endpoints every role has: health, readiness, metrics, login (a feature of its own, above the
HTTP toolkit in app/http)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth.login_limits import LoginLimiter, LoginRefused
from app.auth.tokens import TokenService
from app.auth.users import UserStore
from app.http.auth import PUBLIC
from app.http.errors import ApiError, ErrorBody
from app.settings import Settings

# name -> {"status": "ok" | "degraded" | "down", ...details}
ReadinessCheck = Callable[[], Awaitable[dict[str, dict[str, Any]]]]


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str


class TokenBody(msgspec.Struct):
    token: str
    type: str
    expires_in: int
    expires_at: int
    role: str


class SystemController(Controller):
    path = "/api/v1"
    tags = ["system"]
    opt = {PUBLIC: True}

    @get("/health", summary="Alive", include_in_schema=True)
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Dependencies and lag", responses={503: ResponseSpec(dict[str, Any])})
    async def ready(self, readiness: NamedDependency[ReadinessCheck]) -> Response[dict[str, Any]]:
        checks = await readiness()
        statuses = {check["status"] for check in checks.values()}
        overall = "down" if "down" in statuses else "degraded" if "degraded" in statuses else "ok"
        body = {"status": overall, "checks": checks}
        if overall == "down":
            return Response(body, status_code=503, headers={"Retry-After": "2"})
        return Response(body)

    @post(
        "/auth/login",
        status_code=200,
        summary="Exchange a username and password for a bearer token",
        responses={401: ResponseSpec(ErrorBody), 429: ResponseSpec(ErrorBody), 400: ResponseSpec(ErrorBody)},
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginBody],
        users: NamedDependency[UserStore],
        tokens: NamedDependency[TokenService],
        login_limiter: NamedDependency[LoginLimiter],
    ) -> TokenBody:
        username = data.username.strip().lower()[:64]
        address = request.client.host if request.client else "-"
        try:
            principal = await login_limiter.attempt(
                username, address, lambda: users.authenticate(username, data.password[:1024])
            )
        except LoginRefused as refused:
            raise ApiError(
                429, "too many login attempts; wait and retry", headers={"Retry-After": str(refused.retry_after)}
            ) from None
        if principal is None:
            raise ApiError(401, "wrong username or password", headers={"WWW-Authenticate": 'Bearer realm="inventory"'})
        issued = tokens.issue(principal)
        return TokenBody(issued.token, "Bearer", issued.expires_in, issued.expires_at, principal.role.value)


@get("/metrics", opt={PUBLIC: True}, include_in_schema=False, media_type=CONTENT_TYPE_LATEST)
async def metrics(request: Request[Any, Any, Any], settings: NamedDependency[Settings]) -> Response[bytes]:
    """Open unless INVENTORY_METRICS_TOKEN is set; then only with ``Authorization: Bearer <it>``."""
    if settings.metrics_token:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {settings.metrics_token}".encode()):
            challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
            raise ApiError(401, "metrics need the metrics token", headers=challenge)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
