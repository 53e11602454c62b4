"""The generic calls between a node and the listener (app/http/internal_calls.py), in one process
over an in-process ASGI transport: arguments decoded to the method's annotated types, results
converted back to its return annotation, the allow-list, exceptions re-raised as the same type,
the listener away as a 503; and the real stores served through it (webhooks.db, imports.db with
its lease, an upload sent in parts)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.di import Provide

from app.domain.imports import Progress, RowError
from app.http.errors import ApiError
from app.http.internal_calls import (
    CALLS_PATH,
    ERROR_HEADER,
    CallTargets,
    InternalCallsController,
    RemoteCalls,
    Served,
    Surface,
    remote,
)
from app.imports.store import SCHEMA, ImportRecord, ImportStore, NewRow, remote_import_store
from app.imports.store import SURFACE as IMPORTS
from app.settings import Settings
from app.webhooks.store import SURFACE as WEBHOOKS
from app.webhooks.store import Endpoint, WebhookNotFound, WebhookStore

SECRET = "unit-secret-" + "z" * 40


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Box:
    name: str
    colour: Colour
    sizes: tuple[int, ...]
    body: bytes


class NoSuchBox(LookupError):
    pass


class Boxes:
    """A toy store: typed arguments, typed results, a "not found"."""

    def __init__(self) -> None:
        self.boxes: dict[str, Box] = {}
        self.calls: list[tuple[Any, ...]] = []

    async def put(self, name: str, colour: Colour, sizes: Iterable[int], *, body: bytes = b"") -> Box:
        self.calls.append((name, colour, sizes, body))
        box = Box(name, colour, tuple(sizes), body)
        self.boxes[name] = box
        return box

    async def get(self, name: str) -> Box:
        if name not in self.boxes:
            raise NoSuchBox(name)
        return self.boxes[name]

    async def names(self, colour: Colour | None = None) -> list[str]:
        return [b.name for b in self.boxes.values() if colour is None or b.colour is colour]

    async def burn(self) -> None:
        raise RuntimeError("not allowed, and not in the allow-list anyway")

    async def broken(self) -> None:
        raise ValueError("an exception that may not cross")


BOXES = Surface(Boxes, frozenset({"put", "get", "names", "broken"}), errors=(NoSuchBox,))


@dataclass
class World:
    boxes: Boxes
    webhooks: WebhookStore
    imports: ImportStore
    calls: RemoteCalls
    http: httpx.AsyncClient


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(data_dir=tmp_path / "listener", jwt_secret=SECRET)
    boxes = Boxes()
    webhooks = WebhookStore(tmp_path / "webhooks.db")
    imports = ImportStore(tmp_path / "imports.db")
    await webhooks.open()
    await imports.open()
    targets: CallTargets = {
        "boxes": Served(boxes, BOXES),
        "webhooks": Served(webhooks, WEBHOOKS),
        "imports": Served(imports, IMPORTS),
    }
    app = Litestar(
        route_handlers=[InternalCallsController],
        dependencies={
            "internal_targets": Provide(lambda: targets, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://listener",
        headers={"Authorization": f"Bearer {settings.internal_token}"},
    )
    # A small body limit, so an upload of a few rows goes in parts.
    calls = RemoteCalls("http://listener", settings.internal_token, max_body_bytes=4096, http=http)
    try:
        yield World(boxes, webhooks, imports, calls, http)
    finally:
        await calls.close()
        await webhooks.close()
        await imports.close()


async def test_arguments_and_results_take_the_methods_own_types(world: World) -> None:
    proxy: Boxes = remote(BOXES, world.calls, "boxes")
    box = await proxy.put("a", Colour.BLUE, (1, 2, 3), body=b"\x00\xffbytes")
    # The listener's method got an Enum and bytes, not their JSON forms.
    assert world.boxes.calls == [("a", Colour.BLUE, [1, 2, 3], b"\x00\xffbytes")]
    assert box == Box("a", Colour.BLUE, (1, 2, 3), b"\x00\xffbytes")
    assert await proxy.get("a") == box
    assert await proxy.names(Colour.BLUE) == ["a"] and await proxy.names(colour=Colour.RED) == []


async def test_an_allow_listed_exception_comes_back_as_the_same_type(world: World) -> None:
    proxy: Boxes = remote(BOXES, world.calls, "boxes")
    with pytest.raises(NoSuchBox) as raised:
        await proxy.get("missing")
    assert raised.value.args == ("missing",)
    answer = await world.http.post(f"{CALLS_PATH}/boxes", json={"method": "get", "args": ["missing"]})
    assert answer.status_code == 409 and answer.headers[ERROR_HEADER] == "NoSuchBox"
    assert answer.json()["details"] == {"exception": "NoSuchBox", "args": ["missing"]}


async def test_another_exception_does_not_cross(world: World) -> None:
    answer = await world.http.post(f"{CALLS_PATH}/boxes", json={"method": "broken"})
    assert answer.status_code == 500 and ERROR_HEADER not in answer.headers


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"method": "burn"}, "method"),
        ({"method": "__init__"}, "method"),
        ({"method": "_hidden"}, "method"),
        ({"method": "put", "args": ["a", "green", [1]]}, "args"),
        ({"method": "put", "args": ["a", "red", ["x"]]}, "args"),
        ({"method": "put", "args": ["a"]}, "args"),
        ({"method": "get", "args": ["a"], "kwargs": {"extra": 1}}, "args"),
        ({"method": "get", "other": 1}, "body"),
    ],
)
async def test_anything_outside_the_allow_list_or_the_signature_is_refused(
    world: World, body: dict[str, Any], field: str
) -> None:
    answer = await world.http.post(f"{CALLS_PATH}/boxes", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["details"][0]["field"] == field
    assert world.boxes.calls == []


async def test_the_calls_are_for_the_deployments_own_nodes(world: World) -> None:
    refused = await world.http.post(
        f"{CALLS_PATH}/boxes", json={"method": "names"}, headers={"Authorization": "Bearer not-it"}
    )
    assert refused.status_code == 401
    unknown = await world.http.post(f"{CALLS_PATH}/files", json={"method": "names"})
    assert unknown.status_code == 404


async def test_a_listener_away_or_failing_is_a_503_to_retry(world: World) -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    def away(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for handler in (failing, away):
        calls = RemoteCalls(
            "http://listener", "t", http=httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://l")
        )
        proxy: Boxes = remote(BOXES, calls, "boxes")
        with pytest.raises(ApiError) as raised:
            await proxy.names()
        assert raised.value.status == 503 and "Retry-After" in raised.value.headers
        await calls.close()
    # A target the listener does not know (an older listener): also one to retry.
    with pytest.raises(ApiError) as raised:
        await remote(BOXES, world.calls, "nowhere").names()
    assert raised.value.status == 503


async def test_the_webhook_store_from_a_node(world: World) -> None:
    store: WebhookStore = remote(WEBHOOKS, world.calls, "webhooks")
    await store.open()  # the listener's business: nothing happens
    made = await store.add_endpoint("https://example.com/hook", ("item.created",), "whsec_" + "s" * 30)
    assert isinstance(made, Endpoint) and made.events == ("item.created",)
    assert await world.webhooks.endpoints() == [made] == await store.endpoints()
    await store.pause(made.id, "by an admin")
    assert (await store.endpoint(made.id)).state == "paused"
    assert (await store.resume(made.id)).state == "active"
    assert await store.counts() == {} and await store.deliveries(made.id, state="dead") == []
    assert await store.pending_total() == 0
    with pytest.raises(WebhookNotFound):
        await store.redeliver(made.id, "no-such-delivery")
    await store.remove(made.id)
    with pytest.raises(WebhookNotFound):
        await store.endpoint(made.id)
    # What a node may not do: the dispatcher's part.
    assert isinstance(store, WebhookStore)  # Litestar checks a dependency's type
    with pytest.raises(NotImplementedError):
        await store.fan_out(0, 1, [])


def _record(import_id: str, state: str = "previewed") -> ImportRecord:
    return ImportRecord(
        import_id, "counts", "d" * 64, "stock.csv", "manager", ("sku", "location", "counted"),
        "2026-12-04T10:00:00.000Z", state, None, None,
    )  # fmt: skip


def _rows(count: int) -> list[NewRow]:
    return [
        NewRow(n, {"sku": f"SKU-{n}", "location": "S001", "counted": str(n)}, (), b"\x01command-" + bytes([n % 256]))
        if n % 7
        else NewRow(n, {"sku": "", "location": "S001", "counted": "x"}, (RowError(n, "sku", "missing"),), None)
        for n in range(2, count + 2)
    ]


async def test_an_upload_from_a_node_arrives_whole_in_parts(world: World) -> None:
    store = remote_import_store(world.calls)
    rows = _rows(120)  # far more than 4 KiB: sent in parts, staging until the last
    await store.keep(_record("imp-1"), rows)
    kept = await world.imports.get("imp-1")
    assert kept is not None and kept.state == "previewed"
    assert await store.get("imp-1") == kept
    assert await store.count("imp-1", None) == 120
    errors = sum(1 for row in rows if row.command is None)
    assert await store.progress("imp-1") == Progress.of({"valid": 120 - errors, "error": errors})
    back = await store.rows("imp-1", after=10, limit=3)
    assert [row.row for row in back] == [11, 12, 13]
    assert back[0].command == rows[9].command and back[0].cells == rows[9].cells
    first_error = (await store.rows("imp-1", status="error", limit=1))[0]
    assert first_error.errors == [RowError(7, "sku", "missing")]
    assert [r.id for r in await store.recent(username="manager")] == ["imp-1"]


async def test_a_partial_upload_is_discarded_and_listed_nowhere(world: World) -> None:
    store = remote_import_store(world.calls)
    # A staging import (a node died sending it) is listed nowhere and can be discarded.
    await world.imports.keep(_record("imp-2", state="staging"), _rows(3))
    assert await store.recent(username=None) == []
    await store.discard("imp-2")
    assert await store.get("imp-2") is None and await world.imports.count("imp-2", None) == 0


async def test_one_runner_holds_a_running_import_until_its_lease_expires(world: World) -> None:
    store = remote_import_store(world.calls)
    await store.keep(_record("imp-3"), _rows(5))
    assert not await store.claim("imp-3", "node-a", 30)  # not running yet
    assert await store.set_state("imp-3", "running", at="2026-12-04T10:01:00.000Z", column="confirmed_at")
    assert await store.claim("imp-3", "node-a", 30)
    assert not await store.claim("imp-3", "node-b", 30)  # held
    assert await store.claim("imp-3", "node-a", 30)  # renewed by its holder
    assert await store.claim("imp-3", "node-a", -1)  # (a lease that has already run out)
    assert await store.claim("imp-3", "node-b", 30)  # taken over
    assert not await store.claim("imp-3", "node-a", 30)
    assert [r.id for r in await store.with_state("running")] == ["imp-3"]


async def test_an_old_imports_file_gets_the_lease_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
    store = ImportStore(path)
    await store.open()
    try:
        await store.keep(dataclasses.replace(_record("imp-4"), state="previewed"), _rows(2))
        await store.set_state("imp-4", "running", at="2026-12-04T10:01:00.000Z")
        assert await store.claim("imp-4", "me", 10)
    finally:
        await store.close()
