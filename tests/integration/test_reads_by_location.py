"""Reads by location: a store's list reads only that store's levels, GET item/stock answer just
the levels asked for (cache-first per item and location), and an item's levels come in pages."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.cache.base import ItemCache, ItemEntry
from app.cache.memory import MemoryCache
from app.cache.redis import RedisCache
from app.domain.records import ItemSummary, LevelView
from app.eventlog.embedded import EmbeddedEventLog
from app.eventlog.topics import TOPICS
from app.queries.service import FreshnessFloor, QueryService
from app.reader import InventoryReader
from tests.conftest import running_app
from tests.support.app import base_env, item_body, login
from tests.support.events import adjust, create, message, query
from tests.support.listener import running_listener
from tests.support.services import RedisServer
from tests.support.waiting import eventually

ITEMS = "/api/v1/inventory/items"
STORES = ("S001", "S002", "S003")


class RecordingReader(InventoryReader):
    """Keeps every statement it runs, to explain them afterwards on the same file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.statements: list[tuple[str, list[Any]]] = []

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        self.statements.append((sql, list(params)))
        return await super().rows(sql, params)


def plan(db: Path, sql: str, params: list[Any]) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


async def _applied(db: Path, count: int) -> None:
    async def done() -> bool:
        return query(db, "SELECT COUNT(*) FROM command_outcomes")[0][0] >= count

    await eventually(done)


@pytest.fixture
async def chain(data_dir: Path) -> AsyncIterator[tuple[Path, list[str]]]:
    """A real inventory file: 12 items at MAIN, each stocked at every store but S003 gets half."""
    log = EmbeddedEventLog(data_dir / "eventlog.db")
    await log.start()
    await log.ensure_topics(TOPICS)
    ids = [str(uuid.uuid4()) for _ in range(12)]
    events = []
    for n, item_id in enumerate(ids):
        events.append(create(item_id, f"LOC-{n:02d}", quantity=10 + n))
        for store in STORES:
            if store != "S003" or n % 2 == 0:
                events.append(adjust(item_id, 100 + n * 3 + STORES.index(store), location=store))
    try:
        async with running_listener(log, data_dir) as running:
            await log.publish([message(e) for e in events])
            await _applied(running.db, len(events))
        yield data_dir / "inventory.db", ids
    finally:
        await log.stop()


@pytest.mark.parametrize("sort", ["sku", "-name", "quantity", "-available", "updated_at"])
async def test_a_store_list_reads_that_stores_levels_only(chain: tuple[Path, list[str]], sort: str) -> None:
    db, _ = chain
    reader = RecordingReader(db)
    try:
        page = await reader.list_items(page=2, page_size=2, q="LOC", location="S003", sort=sort)
    finally:
        await reader.close()
    at_s003 = {
        i: (q, r)
        for i, q, r in query(db, "SELECT item_id, quantity, reserved FROM stock_levels WHERE location = 'S003'")
    }
    assert page.total == len(at_s003) == 6
    assert len(page.items) == 2
    for item in page.items:
        assert [level.location for level in item.locations] == ["S003"]
        assert (item.quantity, item.reserved) == at_s003[item.id]
    assert reader.statements
    for sql, params in reader.statements:
        steps = [step for step in plan(db, sql, params) if "stock_levels" in step or " s " in f" {step} "]
        assert steps, (sql, plan(db, sql, params))
        for step in steps:
            # Every read of stock_levels is a search constrained by the store, never a scan of
            # the table nor a search by item alone (which would read every store's level).
            assert step.startswith("SEARCH") and "location=?" in step, (step, sql)


@pytest.mark.parametrize("sort", ["sku", "quantity", "-available"])
async def test_the_chain_list_reads_no_levels_and_carries_the_chain_totals(
    chain: tuple[Path, list[str]], sort: str
) -> None:
    db, _ = chain
    reader = RecordingReader(db)
    try:
        page = await reader.list_items(page=1, page_size=5, q=None, location=None, sort=sort)
    finally:
        await reader.close()
    assert page.total == 12
    totals = {
        i: (q, r)
        for i, q, r in query(db, "SELECT item_id, SUM(quantity), SUM(reserved) FROM stock_levels GROUP BY item_id")
    }
    for item in page.items:
        assert item.locations == []
        assert (item.quantity, item.reserved) == totals[item.id]
    if sort == "quantity":
        assert [item.quantity for item in page.items] == sorted(q for q, _ in totals.values())[:5]
    assert reader.statements
    for sql, _ in reader.statements:
        assert "stock_levels" not in sql


async def test_get_stock_and_item_answer_the_levels_asked_for_and_levels_come_in_pages(data_dir: Path) -> None:
    async with running_app(base_env(data_dir)) as (client, _):
        manager = await login(client, "manager")
        created = await client.post(ITEMS, json=item_body("PAGED-1", quantity=5), headers=manager)
        assert created.status_code == 202, created.text
        item_id = created.json()["item_id"]
        await _applied(data_dir / "inventory.db", 1)
        for store, quantity in (("S001", 7), ("S002", 9)):
            body = {"quantity": quantity, "location": store}
            moved = await client.post(f"{ITEMS}/{item_id}/adjust", json=body, headers=manager)
            assert moved.status_code == 202, moved.text
        await _applied(data_dir / "inventory.db", 3)
        viewer = await login(client, "viewer")

        one = await client.get(f"{ITEMS}/{item_id}/stock", params={"location": "S001"}, headers=viewer)
        assert one.status_code == 200, one.text
        body = one.json()
        assert [(lv["location"], lv["quantity"]) for lv in body["locations"]] == [("S001", 7)]
        assert body["quantity"] == 21  # the chain's total stays on the answer

        two = await client.get(f"{ITEMS}/{item_id}?location=S002&location=MAIN", headers=viewer)
        assert [(lv["location"], lv["quantity"]) for lv in two.json()["locations"]] == [("MAIN", 5), ("S002", 9)]
        commas = await client.get(f"{ITEMS}/{item_id}/stock?location=S002,S001", headers=viewer)
        assert [lv["location"] for lv in commas.json()["locations"]] == ["S001", "S002"]
        every = await client.get(f"{ITEMS}/{item_id}", headers=viewer)
        assert [lv["location"] for lv in every.json()["locations"]] == ["MAIN", "S001", "S002"]
        unknown = await client.get(f"{ITEMS}/{item_id}/stock", params={"location": "S999"}, headers=viewer)
        assert unknown.status_code == 400

        first = (await client.get(f"{ITEMS}/{item_id}/levels", params={"page_size": 2}, headers=viewer)).json()
        assert [lv["location"] for lv in first["levels"]] == ["MAIN", "S001"]
        assert (first["total"], first["page"], first["total_pages"]) == (3, 1, 2)
        second = (await client.get(f"{ITEMS}/{item_id}/levels?page=2&page_size=2", headers=viewer)).json()
        assert [(lv["location"], lv["available"]) for lv in second["levels"]] == [("S002", 9)]
        missing = await client.get(f"{ITEMS}/{uuid.uuid4()}/levels", headers=viewer)
        assert missing.status_code == 404

        page = await client.get(f"/items/{item_id}", params={"levels_page": 1}, headers=viewer)
        assert page.status_code == 200 and "S002" in page.text

        spec = (await client.get("/schema/openapi.json")).json()
        assert f"{ITEMS}/{{item_id}}/levels" in spec["paths"]
        stock_params = {p["name"] for p in spec["paths"][f"{ITEMS}/{{item_id}}/stock"]["get"]["parameters"]}
        assert "location" in stock_params


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ItemCache]:
    if request.param == "memory":
        yield MemoryCache(ttl_seconds=300)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis = RedisCache(server.url, ttl_seconds=300)
    yield redis
    await redis.close()


async def test_reads_are_cache_first_per_item_and_location_and_never_older(data_dir: Path, cache: ItemCache) -> None:
    log = EmbeddedEventLog(data_dir / "eventlog.db")
    await log.start()
    await log.ensure_topics(TOPICS)
    reader = RecordingReader(data_dir / "inventory.db")
    floor = FreshnessFloor()
    queries = QueryService(reader, cache, floor)
    item_id = str(uuid.uuid4())
    try:
        async with running_listener(log, data_dir, cache=MemoryCache(ttl_seconds=300)) as running:
            events = [
                create(item_id, "CACHED-1", quantity=5),
                adjust(item_id, 4, location="S001"),
                adjust(item_id, 6, location="S002"),
            ]
            await log.publish([message(e) for e in events])
            await _applied(running.db, len(events))

            # A miss reads the summary and just S001 from SQLite and fills the cache with them.
            view = await queries.item(item_id, ["S001"])
            assert ([lv.location for lv in view.locations], view.quantity) == (["S001"], 15)
            assert set(await cache.get_levels(item_id, STORES)) == {"S001"}
            # S002 is missing from the cache: only it is read, and cached beside S001.
            reader.statements.clear()
            both = await queries.item(item_id, ["S001", "S002"])
            assert [(lv.location, lv.quantity) for lv in both.locations] == [("S001", 4), ("S002", 6)]
            assert [json_pairs(params) for _, params in reader.statements] == [["S002"]]
            assert set(await cache.get_levels(item_id, STORES)) == {"S001", "S002"}

            # Served from the cache: no SQLite read at all.
            reader.statements.clear()
            cached_level = (await cache.get_levels(item_id, ["S001"]))["S001"]
            assert (await queries.item(item_id, ["S001"])).locations == [cached_level]
            assert reader.statements == []

            # A fill that lost the race to the listener leaves the newer level.
            stale = await queries.read_snapshot(item_id, ["S001"])
            await log.publish([message(adjust(item_id, 1, location="S001"))])
            await _applied(running.db, len(events) + 1)
            newer = LevelView("S001", 5, 0, 5, cached_level.version + 1, cached_level.updated_at)
            fields = {name: getattr(both, name) for name in ItemSummary.__struct_fields__}
            summary = msgspec.structs.replace(
                ItemSummary(**fields), quantity=16, available=16, version=both.version + 1
            )
            await cache.put_items([ItemEntry(item_id, both.version + 1, summary, "CACHED-1", [newer])])
            await queries.fill_cache(stale)
            assert (await cache.get_levels(item_id, ["S001"]))["S001"] == newer

            # A cached copy older than the freshness floor is a miss: SQLite answers.
            floor.raise_to(item_id, both.version + 5)
            reader.statements.clear()
            fresh = await queries.item(item_id, ["S001"])
            assert reader.statements
            assert (fresh.locations[0].quantity, fresh.quantity) == (5, 16)
    finally:
        await reader.close()
        await log.stop()


def json_pairs(params: list[Any]) -> list[str]:
    return next(msgspec.json.decode(p) for p in params if isinstance(p, str) and p.startswith("["))
