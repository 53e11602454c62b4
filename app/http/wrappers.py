"""Wrappers around the whole ASGI application: HEAD like GET, and the log context per request."""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.http.request_id import bind_log_context


def head_as_get(app: ASGIApp) -> ASGIApp:
    """HEAD on any GET resource: the same status and headers, no body (RFC 9110 §9.3.2)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "HEAD":
            await app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await app({**scope, "method": "GET"}, receive, send_without_body)  # type: ignore[arg-type]

    return wrapped


def with_log_context(app: ASGIApp) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # type: ignore[comparison-overlap]
            bind_log_context(scope)
        await app(scope, receive, send)

    return wrapped
