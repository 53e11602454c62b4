"""The stock wall's reads on a real inventory file: most urgent first, one tile per item and
location, the counts of the header, pages that wrap, reads constrained by the store; and the wall's
URLs refusing bad options with a clear message."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.cache.memory import MemoryCache
from app.domain.catalogue import ItemCreatedData
from app.domain.catalogue.items import ItemDeletedData, ItemUpdatedData
from app.domain.events import EventType
from app.domain.rules import StockState, stock_state
from app.domain.wall import tile_key
from app.eventlog.embedded import EmbeddedEventLog
from app.eventlog.topics import TOPICS
from app.queries.service import FreshnessFloor, QueryService
from app.reader import InventoryReader
from tests.conftest import running_app
from tests.integration.test_read_side import wait_for
from tests.integration.test_sse_backpressure import publish_in_batches
from tests.integration.test_sse_locations import PageCollector
from tests.support.app import PASSWORD, base_env
from tests.support.events import adjust, event, message, query, reserve
from tests.support.listener import running_listener
from tests.support.processes import ServiceProcess, run_cli
from tests.support.waiting import eventually

DEFAULT = 5  # the settings' default low-stock threshold
STORES = ("S001", "S002")


class RecordingReader(InventoryReader):
    """Keeps every statement it runs, to explain them afterwards on the same file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.statements: list[tuple[str, list[Any]]] = []

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        self.statements.append((sql, list(params)))
        return await super().rows(sql, params)


def _create(item_id: str, sku: str, name: str, threshold: int | None) -> Any:
    data = ItemCreatedData(sku=sku, name=name, quantity=50, low_stock_threshold=threshold)
    return event(EventType.ITEM_CREATED, item_id, data)


@pytest.fixture
async def stores(data_dir: Path) -> AsyncIterator[Path]:
    """30 items at MAIN; at each store some out (a level of 0, or all of it reserved), some low
    (under the default threshold or their own), most plenty; one deleted; one never at S002."""
    log = EmbeddedEventLog(data_dir / "eventlog.db")
    await log.start()
    await log.ensure_topics(TOPICS)
    events = []
    deleted = str(uuid.uuid4())
    for n in range(30):
        item_id = deleted if n == 7 else str(uuid.uuid4())
        # Names out of SKU order and in mixed case, so the order by name is what is tested.
        name = f"{'abcdefghij'[n % 10]}{'XYZ'[n % 3]} item {n:02d}".capitalize() if n % 4 else f"zz item {n:02d}"
        events.append(_create(item_id, f"WALL-{n:02d}", name, [None, None, 10, 2][n % 4]))
        for s, store in enumerate(STORES):
            if store == "S002" and n == 3:
                continue
            stock = [0, 1, 3, 4, 6, 12, 40][(n + s * 3) % 7]
            events.append(adjust(item_id, stock + 2, location=store))
            # Two reserved: what is available is `stock`, and 0 means everything is held.
            events.append(reserve(item_id, 2, location=store))
    events.append(event(EventType.ITEM_DELETED, deleted, ItemDeletedData()))
    try:
        async with running_listener(log, data_dir) as running:
            await log.publish([message(e) for e in events])

            async def applied() -> bool:
                return query(running.db, "SELECT COUNT(*) FROM command_outcomes")[0][0] >= len(events)

            await eventually(applied)
        yield data_dir / "inventory.db"
    finally:
        await log.stop()


def expected_tiles(db: Path, locations: Sequence[str], attention_only: bool) -> list[tuple[str, str]]:
    """(item id, location) of every tile, in the domain's order, straight from the file."""
    rows = query(
        db,
        "SELECT i.id, i.name, i.sku, i.low_stock_threshold, s.location, s.quantity - s.reserved "
        "FROM stock_levels s JOIN items i ON i.id = s.item_id WHERE i.deleted_at IS NULL",
    )
    tiles = [
        (tile_key(available, threshold, DEFAULT, name, sku, location), (item_id, location), available, threshold)
        for item_id, name, sku, threshold, location, available in rows
        if location in locations
    ]
    if attention_only:
        tiles = [t for t in tiles if stock_state(t[2], t[3], DEFAULT) != StockState.OK]
    return [pair for _, pair, _, _ in sorted(tiles)]


@pytest.mark.parametrize("locations", [("S001",), ("S002", "S001")])
@pytest.mark.parametrize("attention_only", [False, True])
async def test_the_wall_pages_through_its_tiles_most_urgent_first_with_the_walls_counts(
    stores: Path, locations: tuple[str, ...], attention_only: bool
) -> None:
    reader = RecordingReader(stores)
    queries = QueryService(reader, MemoryCache(ttl_seconds=300), FreshnessFloor())
    expected = expected_tiles(stores, locations, attention_only)
    every = expected_tiles(stores, locations, False)
    states = [
        stock_state(available, threshold, DEFAULT)
        for location, available, threshold in query(
            stores,
            "SELECT s.location, s.quantity - s.reserved, i.low_stock_threshold "
            "FROM stock_levels s JOIN items i ON i.id = s.item_id WHERE i.deleted_at IS NULL",
        )
        if location in locations
    ]
    try:
        seen: list[tuple[str, str]] = []
        page = 1
        while True:
            screen = await queries.wall_page(
                locations, attention_only=attention_only, default_threshold=DEFAULT, page=page, page_size=8
            )
            assert screen.page == page
            assert (screen.out, screen.low, screen.total) == (
                states.count(StockState.OUT),
                states.count(StockState.LOW),
                len(every),
            )
            for tile in screen.tiles:
                # One level per tile, the item's totals narrowed to it.
                [level] = tile.locations
                narrowed = (tile.quantity, tile.reserved, tile.available)
                assert narrowed == (level.quantity, level.reserved, level.available)
            seen += [(tile.id, tile.locations[0].location) for tile in screen.tiles]
            if page == screen.total_pages:
                break
            page += 1
        assert seen == expected
        assert screen.shown == len(expected) and screen.total_pages == (len(expected) + 7) // 8
        assert states.count(StockState.OUT) >= 4 and states.count(StockState.LOW) >= 4  # the data is telling
        if len(locations) > 1:
            # A regional wall: an item stocked at both has a tile at each.
            assert len({item_id for item_id, _ in seen}) < len(seen)

        # A page past the end (the wall shrank while it turned) is the first page.
        past = await queries.wall_page(
            locations, attention_only=attention_only, default_threshold=DEFAULT, page=99, page_size=8
        )
        assert past.page == 1 and [(t.id, t.locations[0].location) for t in past.tiles] == expected[:8]
    finally:
        await reader.close()

    assert reader.statements
    with sqlite3.connect(f"file:{stores}?mode=ro", uri=True) as conn:
        for sql, params in reader.statements:
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            levels = [step for step in plan if "stock_levels" in step]
            assert levels, plan
            for step in levels:
                # Constrained by the store: never a scan of every store's levels.
                assert step.startswith("SEARCH") and "location=?" in step, plan


async def test_the_deleted_item_and_the_item_not_stocked_there_have_no_tile(stores: Path) -> None:
    reader = InventoryReader(stores)
    try:
        screen = await reader.wall_page(["S002"], attention_only=False, default_threshold=DEFAULT, page=1, page_size=60)
    finally:
        await reader.close()
    skus = {tile.sku for tile in screen.tiles}
    assert len(screen.tiles) == screen.total == 28
    assert "WALL-07" not in skus and "WALL-03" not in skus


async def test_a_department_wall_has_only_the_skus_with_its_prefix(stores: Path) -> None:
    reader = InventoryReader(stores)
    try:
        screen = await reader.wall_page(
            ["S001"], attention_only=False, default_threshold=DEFAULT, page=1, page_size=60, sku_prefix="wall-1"
        )
        none = await reader.wall_page(
            ["S001"], attention_only=True, default_threshold=DEFAULT, page=1, page_size=60, sku_prefix="WALL_"
        )
    finally:
        await reader.close()
    assert sorted(tile.sku for tile in screen.tiles) == [f"WALL-{n}" for n in range(10, 20)]
    assert screen.total == 10 and screen.out + screen.low < 10
    assert (none.tiles, none.total) == ([], 0)  # "_" is a character here, not a wildcard


async def test_wall_urls_with_bad_options_are_refused_with_what_is_wrong(data_dir: Path) -> None:
    async with running_app(base_env(data_dir)) as (client, container):
        viewer = container.tokens.issue(Principal("viewer", Role.VIEWER)).token
        client.cookies.set("inventory_session", viewer)
        ok = await client.get("/wall", params={"location": "S001,S002", "show": "attention", "density": "large"})
        assert ok.status_code == 200, ok.text
        assert "/ui/wall/tiles?location=S001%2CS002&amp;show=attention&amp;rotate=15&amp;density=large" in ok.text
        assert 'data-capacity="12"' in ok.text

        for params, says in [
            ({"location": "S404"}, "unknown location S404"),
            ({"rotate": "1"}, "rotate must be from 5 to 3600"),
            ({"density": "tiny"}, "density must be one of large, normal, compact"),
            ({"show": "nothing"}, "show must be one of all, attention"),
        ]:
            page = await client.get("/wall", params=params)
            assert page.status_code == 400, (params, page.text)
            assert says in page.text and "This wall cannot be shown" in page.text
            fragment = await client.get("/ui/wall/tiles", params=params)
            assert fragment.status_code == 400 and says in fragment.text
        stream = await client.get("/ui/stream", params={"view": "wall", "location": "S404"})
        assert stream.status_code == 400 and "unknown location S404" in stream.text

        tiles = await client.get("/ui/wall/tiles", params={"location": "MAIN", "page": "3"})
        assert tiles.status_code == 200
        # An empty wall: its placeholder and the header's counts, out of band.
        assert 'id="wall-status"' in tiles.text and 'hx-swap-oob="outerHTML"' in tiles.text
        assert 'data-page="1" data-pages="1"' in tiles.text

        # A user limited to a store opens on it.
        limited = container.tokens.issue(Principal("viewer", Role.VIEWER, locations=frozenset({"S002"}))).token
        client.cookies.set("inventory_session", limited)
        own = await client.get("/wall")
        assert own.status_code == 200 and "/ui/wall/tiles?location=S002&amp;" in own.text


def test_a_regional_attention_walls_stream_sends_a_tile_per_store_and_takes_off_what_needs_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = base_env(data_dir, INVENTORY_LOCATIONS="MAIN,S001,S002,S003")
    run_cli(env, "users", "add", "viewer", "--role", "viewer", "--password", PASSWORD)
    service = ServiceProcess("all", env, tmp_path / "all.log").start()
    try:
        token = httpx.post(
            f"{service.url}/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD}
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        wall = PageCollector(f"{service.url}/ui/stream?view=wall&location=S001,S002&show=attention", auth).start()
        wait_for(lambda: wall.connected.is_set())
        item, other = str(uuid.uuid4()), str(uuid.uuid4())
        events = [
            event(EventType.ITEM_CREATED, item, ItemCreatedData(sku="REG-1", name="Oat milk", quantity=10)),
            adjust(item, 10, location="S001"),  # plenty at S001
            adjust(item, 2, location="S002"),  # low at S002
            adjust(item, 5, location="S003"),  # not on this wall
            event(EventType.ITEM_CREATED, other, ItemCreatedData(sku="REG-2", name="Rye", quantity=1)),
        ]
        publish_in_batches(data_dir / "eventlog.db", events)
        low_tile = f'id="tile-{item}-S002"'
        wait_for(lambda: any(low_tile in html for html in wall.updates))
        # A new name reaches both stores' tiles: the low one shows it, the plenty one is taken off.
        rename = ItemUpdatedData(name="Oat milk, barista")
        publish_in_batches(data_dir / "eventlog.db", [event(EventType.ITEM_UPDATED, item, rename)])
        renamed = wait_for(lambda: next((h for h in wall.updates if "Oat milk, barista" in h), None))
        assert low_tile in renamed and 'class="tile low"' in renamed and 'data-location="S002"' in renamed
        assert f'<article id="tile-{item}-S001" hx-swap-oob="delete">' in renamed
        publish_in_batches(data_dir / "eventlog.db", [event(EventType.ITEM_DELETED, item, ItemDeletedData())])
        wait_for(lambda: any(f'id="tile-{item}-S002" hx-swap-oob="delete"' in html for html in wall.updates))
        time.sleep(0.5)
        wall.stop()
        everything = "".join(wall.updates)
        # Nothing of S003, nor of MAIN (the other item exists only there).
        assert "S003" not in everything and other not in everything
        # The plenty tile at S001 was never sent as a tile, only taken off.
        assert f'id="tile-{item}-S001" class=' not in everything

        limited = httpx.get(
            f"{service.url}/ui/stream", params={"view": "wall", "location": "S001", "rotate": "0"}, headers=auth
        )
        assert limited.status_code == 400 and "rotate must be from 5 to 3600" in limited.text
    finally:
        service.stop()
