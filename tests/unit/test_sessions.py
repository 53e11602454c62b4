"""Sessions that end cleanly: why a principal no longer holds, the live stream that says so and
closes (app/http/stream_end.py), and the session cookie renewed while its person is active
(app/http/auth.py), on a real users.db and an in-process application."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar.response import ServerSentEventMessage

from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import Principal, TokenService
from app.auth.users import UserStore
from app.http.auth import SESSION_COOKIE, renews
from app.http.stream_end import until_ended
from tests.conftest import running_app
from tests.support.app import JWT_SECRET, PASSWORD, base_env

NOW = 1_800_000_000.0


def _principal(issued: float, ttl: int, kind: str = "user") -> Principal:
    return Principal("anna", Role.CLERK, issued_at=int(issued), expires_at=int(issued) + ttl, kind=kind)


def test_a_page_request_renews_a_session_past_half_of_its_life() -> None:
    young, old = _principal(NOW - 1000, 3600), _principal(NOW - 1900, 3600)
    assert not renews(young, "GET", "/", NOW)
    assert renews(old, "GET", "/", NOW)
    assert renews(old, "GET", "/ui/rows", NOW)
    assert renews(old, "POST", "/ui/items", NOW)
    # The stream is not activity, nor is the API.
    assert not renews(old, "GET", "/ui/stream", NOW)
    assert not renews(old, "GET", "/api/v1/inventory/items", NOW)
    assert not renews(_principal(NOW - 1900, 3600, kind="kiosk"), "GET", "/wall", NOW)


@pytest.fixture
async def snapshot(tmp_path: Path) -> AsyncIterator[tuple[UserStore, Revocations]]:
    users = UserStore(tmp_path / "users.db")
    await users.open()
    await users.add("anna", Role.CLERK, PASSWORD)
    revocations = Revocations(users)
    await revocations.refresh()
    try:
        yield users, revocations
    finally:
        await users.close()


async def test_a_session_ends_when_it_expires_is_signed_out_or_its_user_changes(
    snapshot: tuple[UserStore, Revocations],
) -> None:
    users, revocations = snapshot
    anna = await users.authenticate("anna", PASSWORD)
    assert anna is not None
    tokens = TokenService(JWT_SECRET, 60, revocations)
    principal = tokens.verify(tokens.issue(anna).token)
    assert revocations.ended(principal) is None
    assert revocations.ended(principal, now=principal.expires_at) == "expired"

    other = tokens.verify(tokens.issue(anna).token)
    await revocations.end_session(other)
    assert revocations.ended(other) == "signed-out"
    assert revocations.ended(principal) is None

    await users.set_disabled("anna", True)
    await revocations.refresh()
    assert revocations.ended(principal) == "revoked"


async def test_a_stream_ends_with_the_reason_while_nothing_else_comes(tmp_path: Path) -> None:
    closed = asyncio.Event()

    async def quiet() -> AsyncGenerator[ServerSentEventMessage, None]:
        try:
            yield ServerSentEventMessage(data="first", event="update")
            await asyncio.Event().wait()  # nothing more, ever
            yield ServerSentEventMessage(data="never")
        finally:
            closed.set()

    reason: list[str] = []
    stream = until_ended(quiet(), lambda: reason[0] if reason else None, check_seconds=0.05)
    first = await anext(stream)
    assert first.data == "first"
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # still open: nothing to send, no reason to end
    reason.append("revoked")
    last = await asyncio.wait_for(waiting, timeout=10)
    assert (last.event, last.data) == ("ended", "revoked")
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert closed.is_set()  # the stream under it was closed (its subscription released)


async def test_a_stream_that_finishes_by_itself_just_ends() -> None:
    async def two() -> AsyncGenerator[ServerSentEventMessage, None]:
        yield ServerSentEventMessage(data="a")
        yield ServerSentEventMessage(data="b")

    assert [m.data async for m in until_ended(two(), lambda: None)] == ["a", "b"]


async def test_the_session_cookie_is_renewed_by_page_requests_past_half_of_its_life(data_dir: Path) -> None:
    async with running_app(base_env(data_dir, INVENTORY_JWT_TTL="600")) as (client, container):
        clerk = await container.users.authenticate("clerk", PASSWORD)
        assert clerk is not None
        tokens = container.tokens
        fresh = tokens.issue(clerk).token
        aged = tokens.issue(clerk, now=time.time() - 400).token
        old_session = tokens.verify(aged).session

        async def get(path: str, token: str | None) -> httpx.Response:
            client.cookies.clear()
            if token:
                client.cookies.set(SESSION_COOKIE, token)
            return await client.get(path)

        young = await get("/", fresh)
        assert young.status_code == 200 and SESSION_COOKIE not in young.cookies

        api = await get("/api/v1/inventory/items", aged)
        assert api.status_code == 200 and SESSION_COOKIE not in api.cookies

        page = await get("/", aged)
        assert page.status_code == 200
        renewed = tokens.verify(page.cookies[SESSION_COOKIE])
        assert (renewed.username, renewed.role, renewed.epoch) == ("clerk", Role.CLERK, clerk.epoch)
        assert renewed.session != old_session and renewed.expires_at >= int(time.time()) + 590
        header = next(v for k, v in page.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v)
        assert "HttpOnly" in header and "Max-Age=600" in header and "SameSite=lax" in header

        valid = await get("/ui/session", fresh)
        assert valid.status_code == 200 and valid.json()["kind"] == "user"
        gone = await get("/ui/session", None)
        assert gone.status_code == 401 and gone.json()["details"]["kind"] == "user"
