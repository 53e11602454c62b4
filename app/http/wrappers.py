"""Wrappers around the whole ASGI application: HEAD like GET, the log context per request, and a
limit on header size."""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.http.request_id import bind_log_context, request_id_of


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


MAX_HEADER_BYTES = 16 * 1024
TOO_LARGE = b'{"error":"HeadersTooLarge","message":"the request headers are too large","details":null}'


def limit_headers(app: ASGIApp, max_bytes: int = MAX_HEADER_BYTES) -> ASGIApp:
    """431 for requests whose headers are larger than any real client sends (the HTTP parser
    in use has no limit of its own)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and sum(len(k) + len(v) for k, v in scope["headers"]) > max_bytes:  # type: ignore[comparison-overlap]
            await send(
                {
                    "type": "http.response.start",
                    "status": 431,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(TOO_LARGE)).encode()),
                        (b"x-request-id", request_id_of(scope).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": TOO_LARGE, "more_body": False})
            return
        await app(scope, receive, send)

    return wrapped
