"""Request bodies are bounded in size and JSON nesting before anything decodes them.

msgspec (behind every JSON route) raises RecursionError on very deep nesting, which would be a
500; bodies are therefore read first (they are small: INVENTORY_MAX_BODY_BYTES) and refused in
the one error shape when they nest deeper than INVENTORY_JSON_MAX_DEPTH levels (400) or are too
large (413). The check is on the bytes, for every request with a body, whatever its content type:
a form body has no brackets of its own (they are percent-encoded), so it never trips it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, ReceiveMessage, Scope, Send

from app.http.request_id import request_id_of

# A JSON string (so brackets inside one are not counted), or a bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def nesting_exceeds(body: bytes, max_depth: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than max_depth (an unterminated
    string counts its brackets: such a body is not valid JSON anyway)."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # cannot be deeper than the number of openings: the common case, at C speed
    depth = 0
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _refusal(scope: Scope, status: int, error: str, message: str, details: object) -> tuple[Message, Message]:
    body = json.dumps({"error": error, "message": message, "details": details}, separators=(",", ":")).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id_of(scope).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


def guard_bodies(app: ASGIApp, *, max_depth: int, max_bytes: int, uploads: Mapping[str, int] | None = None) -> ASGIApp:
    """``uploads``: paths that take a file (a CSV import) up to their own size; their bodies are
    not JSON, so their nesting is not counted."""
    uploads = dict(uploads or {})

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _METHODS_WITH_BODY:  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        upload_limit = uploads.get(scope["path"])
        limit = max_bytes if upload_limit is None else upload_limit
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                too_large, details = "the request body is too large", None
                if upload_limit is not None:  # a file: say how large it may be
                    too_large = f"the file is too large: at most {upload_limit} bytes may be uploaded"
                    details = {"max_bytes": upload_limit}
                for reply in _refusal(scope, 413, "PayloadTooLarge", too_large, details):
                    await send(reply)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if upload_limit is None and nesting_exceeds(body, max_depth):
            why = f"JSON may nest arrays and objects at most {max_depth} levels deep"
            problem = [{"field": "body", "message": why}]
            for reply in _refusal(scope, 400, "ValidationError", "the request is invalid", problem):
                await send(reply)
            return
        replayed = False

        async def replay() -> ReceiveMessage:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: a disconnect, when it comes
            replayed = True
            request: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
            return request

        await app(scope, replay, send)

    return wrapped
