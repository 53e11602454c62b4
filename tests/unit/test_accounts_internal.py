"""Accounts between the listener and its nodes, in one process: the allow-list and argument
decoding of the calls, the store's refusals coming back as the same exceptions, and a node's copy
of users.db installed under its open stores (the listener's endpoints over an in-process ASGI
transport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.di import Provide

from app.auth.kiosk import KioskLinkError, KioskLinks
from app.auth.roles import Role
from app.auth.users import LastAdmin, UnknownUser, UserError, UserExists, UserStore
from app.http.errors import ApiError
from app.settings import Settings
from app.system.accounts_internal import (
    ACCOUNTS_PATH,
    ERROR_HEADER,
    AccountsInternalController,
    AddArgs,
    BadCall,
    decode_call,
    store_error,
)
from app.system.accounts_remote import AccountsMirror, NodeKioskLinks, NodeUserStore, store_exception

PASSWORD = "correct-horse-battery"
SECRET = "unit-secret-" + "y" * 40


def test_a_call_decodes_into_the_methods_own_types() -> None:
    target, call, args = decode_call(
        b'{"target":"users","method":"add","args":{"username":"ann","role":"clerk","password":"p","locations":["S001"]}}'
    )
    assert target == "users" and call.args is AddArgs
    assert args.role is Role.CLERK and args.locations == ["S001"] and args.known_locations is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"target":"users","method":"authenticate","args":{}}', "method"),
        (b'{"target":"users","method":"__init__","args":{}}', "method"),
        (b'{"target":"kiosk","method":"add","args":{}}', "method"),
        (b'{"target":"files","method":"add","args":{}}', "body"),
        (b'{"target":"users","method":"set_role","args":{"username":"ann","role":"wizard"}}', "args"),
        (b'{"target":"users","method":"remove","args":{"username":"ann","extra":1}}', "args"),
        (b'{"target":"users","method":"remove","args":{}}', "args"),
        (b"not json", "body"),
    ],
)
def test_anything_outside_the_allow_list_is_refused(body: bytes, field: str) -> None:
    with pytest.raises(BadCall) as refused:
        decode_call(body)
    assert refused.value.field == field


@pytest.mark.parametrize(
    "exc",
    [
        UnknownUser("ann"),
        UserExists("ann"),
        LastAdmin("ann"),
        UserError("password must be at least 12 characters", "password"),
        UserError("there are too many users"),
        KioskLinkError("locations", "choose at least one location"),
    ],
)
def test_a_refusal_comes_back_as_the_same_exception(exc: UserError | KioskLinkError) -> None:
    api = store_error(exc)
    body = {"error": api.error, "message": api.message, "details": api.details}
    back = store_exception(api.headers[ERROR_HEADER], body)
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert getattr(back, "field", None) == getattr(exc, "field", None)
    assert getattr(back, "username", None) == getattr(exc, "username", None)


@dataclass
class Pair:
    listener_users: UserStore
    listener_links: KioskLinks
    http: httpx.AsyncClient
    mirror: AccountsMirror
    users: NodeUserStore
    links: NodeKioskLinks


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    settings = Settings(data_dir=tmp_path / "listener", jwt_secret=SECRET)
    listener_users, listener_links = UserStore(settings.users_db), KioskLinks(settings.users_db)
    await listener_users.open()
    await listener_links.open()
    await listener_users.add("admin", Role.ADMIN, PASSWORD)
    app = Litestar(
        route_handlers=[AccountsInternalController],
        dependencies={
            "users": Provide(lambda: listener_users, sync_to_thread=False),
            "kiosk_links": Provide(lambda: listener_links, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://listener",
        headers={"Authorization": f"Bearer {settings.internal_token}"},
    )
    node_db = tmp_path / "node" / "users.db"
    mirror = AccountsMirror("http://listener", settings.internal_token, node_db, http=http)
    await mirror.start()
    users, links = NodeUserStore(node_db, mirror), NodeKioskLinks(node_db, mirror)
    await users.open()
    await links.open()
    try:
        yield Pair(listener_users, listener_links, http, mirror, users, links)
    finally:
        await users.close()
        await links.close()
        await mirror.close()
        await listener_users.close()
        await listener_links.close()


async def test_a_node_reads_the_copy_and_its_own_writes_at_once(pair: Pair) -> None:
    assert await pair.users.authenticate("admin", PASSWORD) is not None
    added = await pair.users.add("ann", Role.CLERK, PASSWORD, locations=["s001"], known_locations=["MAIN", "S001"])
    assert added.role is Role.CLERK and added.locations == ("S001",)
    # Written on the listener, read here at once from the copy.
    assert await pair.listener_users.get("ann") == added
    assert await pair.users.get("ann") == added
    assert await pair.users.authenticate("ann", PASSWORD) is not None
    changed = await pair.users.update("ann", role=Role.MANAGER, disabled=True)
    assert changed.role is Role.MANAGER and changed.disabled
    assert await pair.users.set_locations("ann", ["main"], known_locations=["MAIN"]) == ("MAIN",)
    await pair.users.revoke_session("admin", "session-1", 2**40, max_sessions=10)
    assert "session-1" in await pair.users.revoked_sessions()
    assert await pair.users.revision() == await pair.listener_users.revision() == pair.mirror.revision

    link, secret = await pair.links.create("Back office", ["main"], known=["MAIN"], created_by="admin")
    assert secret and link.locations == ("MAIN",)
    assert (await pair.links.states())[link.id].revoked is False
    revoked = await pair.links.revoke(link.id)
    assert revoked is not None and revoked.revoked_at is not None
    assert (await pair.links.states())[link.id].revoked is True
    assert await pair.links.revoke("0" * 16) is None

    await pair.users.remove("ann")
    assert await pair.users.get("ann") is None


async def test_the_listeners_refusals_are_the_local_stores_exceptions(pair: Pair) -> None:
    with pytest.raises(UserExists):
        await pair.users.add("admin", Role.CLERK, PASSWORD)
    with pytest.raises(UnknownUser):
        await pair.users.set_role("nobody", Role.CLERK)
    with pytest.raises(LastAdmin):
        await pair.users.set_disabled("admin", True)
    with pytest.raises(UserError) as short:
        await pair.users.set_password("admin", "short")
    assert short.value.field == "password"
    with pytest.raises(KioskLinkError) as bad_link:
        await pair.links.create("Wall", ["S009"], known=["MAIN"], created_by="admin")
    assert bad_link.value.field == "locations"


async def test_an_unchanged_revision_is_not_copied_again(pair: Pair) -> None:
    assert await pair.mirror.refresh() is False
    current = await pair.http.get(ACCOUNTS_PATH)
    assert current.status_code == 200 and current.content.startswith(b"SQLite format 3")
    assert current.headers["ETag"] == f'"{current.headers["X-Accounts-Revision"]}"'
    same = await pair.http.get(ACCOUNTS_PATH, headers={"If-None-Match": current.headers["ETag"]})
    assert same.status_code == 304 and same.content == b""
    # A change made on the listener itself (the console command) reaches the copy on the next pull.
    await pair.listener_users.add("bob", Role.VIEWER, PASSWORD)
    assert await pair.mirror.refresh() is True
    assert await pair.users.get("bob") is not None


async def test_the_internal_endpoints_refuse_other_callers_in_json(pair: Pair) -> None:
    for wrong in ({}, {"Authorization": "Bearer nope"}):
        pair.http.headers.pop("Authorization", None)
        answer = await pair.http.get(ACCOUNTS_PATH, headers=wrong)
        assert answer.status_code == 401 and answer.json()["error"] == "Unauthorized"
        call = await pair.http.post(
            f"{ACCOUNTS_PATH}/call", json={"target": "users", "method": "remove"}, headers=wrong
        )
        assert call.status_code == 401


async def test_an_unknown_method_is_a_400(pair: Pair) -> None:
    answer = await pair.http.post(
        f"{ACCOUNTS_PATH}/call", json={"target": "users", "method": "authenticate", "args": {}}
    )
    assert answer.status_code == 400
    assert answer.json()["details"][0]["field"] == "method"
    assert ERROR_HEADER not in answer.headers


async def test_without_the_listener_writes_answer_503_and_reads_go_on(pair: Pair, tmp_path: Path) -> None:
    def refuse(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    away = AccountsMirror(
        "http://listener", "t", pair.mirror.path, http=httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    )
    # A copy from an earlier run is served while the listener is away.
    await away.start()
    users = NodeUserStore(pair.mirror.path, away)
    await users.open()
    try:
        assert await users.authenticate("admin", PASSWORD) is not None
        with pytest.raises(ApiError) as refused:
            await users.add("carl", Role.CLERK, PASSWORD)
        assert refused.value.status == 503 and "Retry-After" in refused.value.headers
    finally:
        await users.close()
        await away.close()
