"""``X-Request-ID`` on every response (errors, 404 and HEAD included), generated when absent.

The id is settled once per request, on first use, and kept in the ASGI scope: handlers carry
it into events as the correlation id, and the app-level ``before_send`` hook echoes it.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from app.logs import command_id_var, request_id_var

ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:@=+/-]{1,128}$")
# Ids made here: a random prefix per process and a counter, as long as a uuid4's hex and as
# unique, for a fraction of its cost (a uuid4 was up to a tenth of a hot request's CPU). They
# name a request in the logs; nothing secret hangs on them.
_PREFIX = os.urandom(10).hex()
_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):012x}"


def _reseed_after_fork() -> None:
    global _PREFIX
    _PREFIX = os.urandom(10).hex()


# A worker forked from a supervisor (app/ops/workers.py) must not repeat its siblings' ids.
os.register_at_fork(after_in_child=_reseed_after_fork)


def _settle(scope: Scope | dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    if "request_id" not in state:
        sent = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                sent = value.decode("latin-1")
                break
        from_client = sent is not None and bool(ACCEPTABLE.match(sent))
        state["request_id"] = sent if from_client else new_request_id()
        state["request_id_from_client"] = from_client
    return state


def request_id_of(scope: Scope | dict[str, Any]) -> str:
    return str(_settle(scope)["request_id"])


def client_request_id(scope: Scope | dict[str, Any]) -> str | None:
    """The id the client sent itself (None when we generated one)."""
    state = _settle(scope)
    return str(state["request_id"]) if state["request_id_from_client"] else None


def bind_log_context(scope: Scope | dict[str, Any]) -> None:
    """Every log line written while handling this request carries its id."""
    request_id_var.set(request_id_of(scope))
    command_id_var.set(None)


async def echo_request_id(message: Message, scope: Scope) -> None:
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)["X-Request-ID"] = request_id_of(scope)
