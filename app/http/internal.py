"""Endpoints between the processes of one deployment (``/internal/``): the listener serves a
node its snapshot, its outbox and the accounts (docs/scaling.md). They take no user's token but
a bearer derived from the secret every process already shares (``Settings.internal_token``),
and are refused to everybody else whatever their role."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request

from app.http.errors import ApiError
from app.settings import Settings

INTERNAL_PATH = "/internal"


def require_internal(request: Request[Any, Any, Any], settings: Settings) -> None:
    """Raise 401 unless the request carries the deployment's internal bearer token."""
    presented = request.headers.get("authorization", "")
    expected = f"Bearer {settings.internal_token}"
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ApiError(401, "this endpoint is for the deployment's own nodes")
