"""The Redis cache: version guards under a forced race, and the read-only SQLite side."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from app.cache.base import ItemEntry
from app.cache.redis import RedisCache
from app.eventlog.embedded import EmbeddedEventLog
from app.eventlog.topics import TOPICS
from app.queries.service import FreshnessFloor, QueryService
from app.reader import InventoryReader
from tests.support.events import create, message, reserve
from tests.support.listener import running_listener
from tests.support.services import RedisServer
from tests.support.waiting import eventually


@pytest.fixture
async def redis_cache(redis_server: RedisServer):  # type: ignore[no-untyped-def]
    cache = RedisCache(redis_server.url, ttl_seconds=300)
    yield cache
    await cache.close()


async def test_a_cache_fill_that_loses_the_race_to_the_listener_leaves_the_newer_version(
    redis_cache: RedisCache, data_dir: Path
) -> None:
    log = EmbeddedEventLog(data_dir / "eventlog.db")
    await log.start()
    await log.ensure_topics(TOPICS)
    reader = InventoryReader(data_dir / "inventory.db")
    queries = QueryService(reader, redis_cache, FreshnessFloor())
    item_id = str(uuid.uuid4())
    try:
        async with running_listener(log, data_dir, cache=redis_cache) as running:
            await log.publish([message(create(item_id, "RACE-1", quantity=5))])
            await eventually(lambda: _version_in_cache(redis_cache, item_id, 1))
            # The query service misses and reads version 1 from SQLite...
            stale = await queries.read_snapshot(item_id)
            assert stale.version == 1
            # ...meanwhile the listener applies a change and refreshes Redis with version 2...
            await log.publish([message(reserve(item_id, 2))])
            await eventually(lambda: _version_in_cache(redis_cache, item_id, 2))
            assert running.listener.status.applied == 2
            # ...and only then does the query service write what it read.
            await queries.fill_cache(stale)
        cached = await redis_cache.get_item(item_id)
        assert cached is not None and cached.version == 2 and cached.item is not None
        assert cached.item.reserved == 2
        # A stale tombstone cannot hide a live item either, nor an old copy revive a deleted one.
        await redis_cache.put_items([ItemEntry(item_id, 1, None)])
        assert (await redis_cache.get_item(item_id)).version == 2  # type: ignore[union-attr]
    finally:
        await reader.close()
        await log.stop()


async def _version_in_cache(cache: RedisCache, item_id: str, version: int) -> bool:
    cached = await cache.get_item(item_id)
    return cached is not None and cached.version >= version


async def test_the_query_side_cannot_write_to_the_inventory_database(data_dir: Path) -> None:
    log = EmbeddedEventLog(data_dir / "eventlog.db")
    await log.start()
    await log.ensure_topics(TOPICS)
    async with running_listener(log, data_dir):
        pass  # creates the database file
    await log.stop()
    reader = InventoryReader(data_dir / "inventory.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            conn = await reader.connection()
            await conn.execute(
                "INSERT INTO items (id, sku, name, version, created_at, updated_at) VALUES ('x','x','x',1,'','')"
            )
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            conn = await reader.connection()
            await conn.execute("DELETE FROM items")
    finally:
        await reader.close()
