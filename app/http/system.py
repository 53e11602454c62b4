"""Endpoints every role has: health, readiness, metrics, login."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth.tokens import TokenService
from app.auth.users import UserStore
from app.commands.schemas import ErrorBody
from app.http.auth import PUBLIC
from app.http.errors import ApiError
from app.metrics import track_size

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


class LoginRateLimiter:
    """At most N attempts per minute per username, and 5N per client address (a till or a shop's
    shared connection must not lock everyone out when one person mistypes)."""

    ADDRESS_FACTOR = 5

    def __init__(self, per_minute: int) -> None:
        self._limit = per_minute
        self._attempts: dict[str, deque[float]] = {}
        # Cleared when it passes 100,000 keys (below); two keys per attempt.
        track_size("login_attempt_windows", 100_002, lambda: len(self._attempts))

    def check(self, username: str, address: str) -> None:
        now = time.monotonic()
        keys = ((f"user:{username}", self._limit), (f"addr:{address}", self._limit * self.ADDRESS_FACTOR))
        for key, limit in keys:
            window = self._attempts.setdefault(key, deque())
            while window and window[0] < now - 60:
                window.popleft()
            if len(window) >= limit:
                retry = int(60 - (now - window[0])) + 1
                raise ApiError(429, "too many login attempts; wait and retry", headers={"Retry-After": str(retry)})
        for key, _ in keys:
            self._attempts[key].append(now)
        if len(self._attempts) > 100_000:  # bounded memory under a spray of usernames
            self._attempts.clear()


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
        login_limiter: NamedDependency[LoginRateLimiter],
    ) -> TokenBody:
        username = data.username.strip().lower()[:64]
        login_limiter.check(username, request.client.host if request.client else "-")
        principal = await users.authenticate(username, data.password[:1024])
        if principal is None:
            raise ApiError(401, "wrong username or password", headers={"WWW-Authenticate": 'Bearer realm="inventory"'})
        issued = tokens.issue(principal)
        return TokenBody(issued.token, "Bearer", issued.expires_in, issued.expires_at, principal.role.value)


@get("/metrics", opt={PUBLIC: True}, include_in_schema=False, media_type=CONTENT_TYPE_LATEST)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
