"""Security headers on every answer.

Pages (everything outside ``/api/`` and ``/metrics``) get a Content-Security-Policy that allows
only this origin's scripts and styles (no inline code: htmx runs with ``allowEval`` and its
injected indicator style turned off, see app/web/context.py, and the API explorer loads the
Swagger UI vendored under static/vendor/swagger-ui with an init script of its own), may not be
framed, and send the referrer only to this origin. Every answer, JSON included, says
``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

NOSNIFF = (b"x-content-type-options", b"nosniff")


def content_security_policy(command_base_url: str = "") -> str:
    """The policy for pages; a split deployment's pages also talk to the command service."""
    parts = urlsplit(command_base_url)
    extra = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        f"connect-src 'self'{extra}; form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    )


def page_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    return [
        NOSNIFF,
        (b"content-security-policy", content_security_policy(settings.command_base_url).encode()),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    ]


def with_security_headers(app: ASGIApp, settings: Settings) -> ASGIApp:
    for_pages = page_headers(settings)
    for_api = [NOSNIFF]

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        path = scope["path"]
        extra = for_api if path.startswith("/api/") or path == "/metrics" else for_pages

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped
