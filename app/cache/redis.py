"""The Redis cache. Writes go through a Lua script that refuses to move an item back in time."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.cache.base import CachedItem, CacheUnavailable, ItemEntry, ItemJson

ITEM_KEY = "inv:item:{}"
SKU_KEY = "inv:sku:{}"
OUTCOME_KEY = "inv:cmd:{}"
OUTCOME_TTL_SECONDS = 24 * 3600

# KEYS: item key, sku key (or ""), ARGV: version, json ("" = tombstone), ttl, item id
GUARDED_PUT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '-1')
if current >= tonumber(ARGV[1]) then return 0 end
local old = redis.call('HGET', KEYS[1], 'sku')
if old and old ~= '' and old ~= ARGV[5] and redis.call('GET', 'inv:sku:' .. old) == ARGV[4] then
  redis.call('DEL', 'inv:sku:' .. old)
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2], 'sku', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[5] ~= '' then
  redis.call('SET', 'inv:sku:' .. ARGV[5], ARGV[4], 'EX', ARGV[3])
end
return 1
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class RedisCache:
    def __init__(self, url: str, *, ttl_seconds: int) -> None:
        self._ttl = ttl_seconds
        # Short timeouts: a cache that is slow to answer is worth less than SQLite.
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry_on_timeout=False,
            health_check_interval=10,
        )
        self._put = self._redis.register_script(GUARDED_PUT)

    async def get_item(self, item_id: str) -> CachedItem | None:
        try:
            version, data = await self._redis.hmget(ITEM_KEY.format(item_id), ["v", "d"])
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None
        if version is None:
            return None
        return CachedItem(int(version), json.loads(data) if data else None)

    async def get_item_id(self, sku: str) -> str | None:
        try:
            value = await self._redis.get(SKU_KEY.format(sku))
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None
        return value.decode() if isinstance(value, bytes) else value

    async def put_items(self, entries: list[ItemEntry]) -> None:
        if not entries:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for e in entries:
                    await self._put(
                        keys=[ITEM_KEY.format(e.item_id)],
                        args=[
                            e.version,
                            _dumps(e.item) if e.item is not None else "",
                            self._ttl,
                            e.item_id,
                            e.sku if e.item is not None and e.sku else "",
                        ],
                        client=pipe,
                    )
                await pipe.execute()
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None

    async def get_outcome(self, command_id: str) -> ItemJson | None:
        try:
            value = await self._redis.get(OUTCOME_KEY.format(command_id))
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None
        return json.loads(value) if value else None

    async def put_outcomes(self, outcomes: list[ItemJson]) -> None:
        if not outcomes:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for outcome in outcomes:
                    pipe.set(OUTCOME_KEY.format(outcome["command_id"]), _dumps(outcome), ex=OUTCOME_TTL_SECONDS)
                await pipe.execute()
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def server_id(self) -> str | None:
        try:
            info = await self._redis.info("server")
        except RedisError:
            return None
        return str(info.get("run_id"))

    async def close(self) -> None:
        await self._redis.aclose()
