"""The hot API reads, answered in front of the application when this process holds the answer
(app/queries/answer_cache.py says which, and why).

A request qualifies when it is a GET of the stock of one item (no query string) or of the item
list, with a bearer token of at least the viewer role, and no ``X-Min-Seq`` beyond the changes
this process has announced (``current``: the change feed's sequence, which moves only after the
held answers of the items it concerns are dropped). Everything about it
that the application would check is checked the same way: the token (signature, expiry,
revocation: ``TokenService.verify``), the role, the item id's form. A request that does not
qualify, or whose answer is not held, goes to the application; its 200 answer is kept on the
way out. The answer sent from here carries what the application's would: its own headers, a
fresh ``X-Request-ID`` (the client's when acceptable) and ``X-Inventory-Seq``.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.roles import Role
from app.auth.tokens import InvalidToken, TokenService
from app.domain.rules import normalise_uuid
from app.http.request_id import ACCEPTABLE, new_request_id
from app.queries.answer_cache import Answer, AnswerCache, Key
from app.queries.freshness import MIN_SEQ_HEADER, SEQ_HEADER

ITEMS_PATH = "/api/v1/inventory/items"
STOCK_SUFFIX = "/stock"
# Set per answer here, so never kept with one.
FRESH_HEADERS = frozenset({b"x-request-id", SEQ_HEADER, b"set-cookie"})

Current = Callable[[], int]


def hot_key(scope: Scope) -> Key | None:
    """Which held answer a request could take, if it is one of the hot reads."""
    if scope["type"] != "http" or scope.get("method") != "GET":  # type: ignore[comparison-overlap]
        return None
    path: str = scope["path"]
    if path == ITEMS_PATH:
        query: bytes = scope.get("query_string", b"")
        return None if b"min_seq" in query else ("list", query.decode("latin-1"))
    if not path.endswith(STOCK_SUFFIX) or not path.startswith(ITEMS_PATH) or scope.get("query_string"):
        return None
    item_id = path[len(ITEMS_PATH) + 1 : -len(STOCK_SUFFIX)]
    # Only the form the application stores: any other spelling takes its path (and its answer).
    if normalise_uuid(item_id) != item_id:
        return None
    return ("stock", item_id)


def with_hot_reads(app: ASGIApp, answers: AnswerCache, tokens: TokenService, current: Current) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        key = hot_key(scope)
        if key is None:
            await app(scope, receive, send)
            return
        token = request_id = wanted = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = value
            elif name == b"x-request-id":
                request_id = value
            elif name == MIN_SEQ_HEADER:
                wanted = value
        seq = current()
        # A held answer holds every change announced here; a later one is waited for there.
        if wanted is not None and not (wanted.isdigit() and len(wanted) <= 18 and int(wanted) <= seq):
            await app(scope, receive, send)
            return
        if token is None or token[:7].lower() != b"bearer ":
            await app(scope, receive, send)
            return
        try:
            principal = tokens.verify(token[7:].strip().decode("latin-1"))
        except (InvalidToken, UnicodeDecodeError):
            await app(scope, receive, send)  # its 401, in its shape
            return
        if not principal.can(Role.VIEWER):
            await app(scope, receive, send)
            return
        held = answers.get(key, seq)
        if held is None:
            await _through_app(app, scope, receive, send, answers, key, seq)
            return
        if request_id is None or not ACCEPTABLE.match(request_id.decode("latin-1")):
            request_id = new_request_id().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*held.headers, (b"x-request-id", request_id), (SEQ_HEADER, b"%d" % seq)],
            }
        )
        await send({"type": "http.response.body", "body": held.body, "more_body": False})

    return wrapped


async def _through_app(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, answers: AnswerCache, key: Key, seq: int
) -> None:
    """Let the application answer, and keep its answer when it is a whole 200."""
    fill = answers.begin(key)
    kept: list[tuple[bytes, bytes]] | None = None

    async def keeping(message: Message) -> None:
        nonlocal kept
        if message["type"] == "http.response.start":
            if message["status"] == 200:
                kept = [(name, value) for name, value in message.get("headers", ()) if name not in FRESH_HEADERS]
        elif message["type"] == "http.response.body" and kept is not None:
            if message.get("more_body", False):
                kept = None  # streamed: not ours to keep
            else:
                body = bytes(message.get("body", b""))
                answers.keep(key, fill, Answer(kept, body, seq if key[0] == "list" else None))
        await send(message)

    try:
        await app(scope, receive, keeping)
    finally:
        answers.abandon(key, fill)
