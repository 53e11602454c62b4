"""The sequence a read reflects, and "at least this sequence" (docs/scaling.md).

Every GET answer of the query service carries ``X-Inventory-Seq``: every change up to it is in
what the answer was read from (on a node, the replica's watermark; sharing the listener's disk,
the last change the feed announced). A client that saw a newer sequence elsewhere (a command's
``Prefer: wait`` answer on another node) asks with ``X-Min-Seq: N`` or ``?min_seq=N``: the read
waits until this process has it, up to ``INVENTORY_MIN_SEQ_WAIT``, and otherwise answers 503
``behind`` with ``Retry-After: 1``.

An ASGI wrapper rather than a dependency: one header scan per request when no sequence is
asked, and the same rule for the API, the pages and the exports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.http.errors import error_body

SEQ_HEADER = b"x-inventory-seq"
MIN_SEQ_HEADER = b"x-min-seq"
# Paths whose answers are not read-model reads.
SKIPPED = ("/static/", "/metrics", "/schema", "/api/v1/health", "/ready")

Current = Callable[[], int]
WaitFor = Callable[[int, float], Awaitable[bool]]


def asked_seq(scope: Scope) -> int | str | None:
    """The sequence a request asks for: None when none, a message when it is not a number."""
    text: str | None = None
    for name, value in scope["headers"]:
        if name == MIN_SEQ_HEADER:
            text = value.decode("latin-1")
            break
    query = scope.get("query_string", b"")
    if text is None and b"min_seq=" in query:
        text = dict(parse_qsl(query.decode("latin-1"))).get("min_seq")
    if text is None:
        return None
    text = text.strip()
    if not text.isdigit() or len(text) > 18:
        return "min_seq must be a non-negative whole number"
    return int(text)


def with_sequence(app: ASGIApp, current: Current, wait_for: WaitFor, wait_seconds: float) -> ASGIApp:
    async def answer(send: Send, status: int, body: dict[str, object], headers: list[tuple[bytes, bytes]]) -> None:
        content = msgspec.json.encode(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": content, "more_body": False})

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"  # type: ignore[comparison-overlap]
            or scope.get("method") not in ("GET", "HEAD")
            or scope["path"].startswith(SKIPPED)
        ):
            await app(scope, receive, send)
            return
        wanted = asked_seq(scope)
        if isinstance(wanted, str):
            await answer(
                send, 400, error_body("ValidationError", wanted, [{"field": "min_seq", "message": wanted}]), []
            )
            return
        if wanted is not None and current() < wanted and not await wait_for(wanted, wait_seconds):
            seq = current()
            await answer(
                send,
                503,
                error_body(
                    "behind",
                    f"this node has applied changes up to {seq}, not yet {wanted}; try again",
                    {"seq": seq, "min_seq": wanted},
                ),
                [(b"retry-after", b"1"), (SEQ_HEADER, str(seq).encode())],
            )
            return
        # Taken before the read: what the answer was read from holds at least this much.
        header = (SEQ_HEADER, str(current()).encode())

        async def send_with_seq(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await app(scope, receive, send_with_seq)

    return wrapped
