"""The Redis cache. Writes go through a Lua script that refuses to move an item back in time."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.cache.base import CachedItem, CacheUnavailable, ItemEntry
from app.domain.records import LevelView, OutcomeChange, decode_level, decode_outcome, decode_summary, encode_text

ITEM_KEY = "inv:item:{}"
SKU_KEY = "inv:sku:{}"
OUTCOME_KEY = "inv:cmd:{}"
OUTCOME_TTL_SECONDS = 24 * 3600

# One hash per item: its summary ('v' version, 'd' json, "" = tombstone, 'sku') and any of its
# levels ('lv:<location>' version, 'l:<location>' json), so a read of an item at one location is
# one HMGET. KEYS: the item keys; ARGV: ttl, then per item: version, json, item id, sku (""),
# the number of levels n, then n times location, level version, level json. One call for a whole
# batch of items: per-command round trips and reply parsing were most of the relay's time. The
# summary is written only if newer than the cached one, each level only if its own version is.
GUARDED_PUT = """
local ttl = ARGV[1]
local at = 2
local written = 0
for i = 1, #KEYS do
  local version, data, id, sku, n = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], tonumber(ARGV[at + 4])
  at = at + 5
  local current = tonumber(redis.call('HGET', KEYS[i], 'v') or '-1')
  if current < tonumber(version) then
    local old = redis.call('HGET', KEYS[i], 'sku')
    if old and old ~= '' and old ~= sku and redis.call('GET', 'inv:sku:' .. old) == id then
      redis.call('DEL', 'inv:sku:' .. old)
    end
    redis.call('HSET', KEYS[i], 'v', version, 'd', data, 'sku', sku)
    if sku ~= '' then
      redis.call('SET', 'inv:sku:' .. sku, id, 'EX', ttl)
    end
    written = written + 1
  end
  for j = 1, n do
    local location, level_version, level = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    at = at + 3
    local cached = tonumber(redis.call('HGET', KEYS[i], 'lv:' .. location) or '-1')
    if cached < tonumber(level_version) then
      redis.call('HSET', KEYS[i], 'lv:' .. location, level_version, 'l:' .. location, level)
    end
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
return written
"""

# KEYS: outcome keys; ARGV: ttl, then one json per key.
PUT_ALL = """
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""

# Keys per script call: a script blocks Redis while it runs, so keep each one short.
CHUNK = 500


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
        self._put_items = self._redis.register_script(GUARDED_PUT)
        self._put_all = self._redis.register_script(PUT_ALL)

    async def get_item(self, item_id: str) -> CachedItem | None:
        try:
            version, data = await self._redis.hmget(ITEM_KEY.format(item_id), ["v", "d"])
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None
        if version is None:
            return None
        return CachedItem(int(version), decode_summary(data) if data else None)

    async def get_item_id(self, sku: str) -> str | None:
        try:
            value = await self._redis.get(SKU_KEY.format(sku))
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None
        return value.decode() if isinstance(value, bytes) else value

    async def get_levels(self, item_id: str, locations: Sequence[str]) -> dict[str, LevelView]:
        if not locations:
            return {}
        try:
            values = await self._redis.hmget(ITEM_KEY.format(item_id), [f"l:{code}" for code in locations])
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None
        return {code: decode_level(value) for code, value in zip(locations, values, strict=True) if value}

    async def put_items(self, entries: list[ItemEntry]) -> None:
        try:
            for first in range(0, len(entries), CHUNK):
                chunk = entries[first : first + CHUNK]
                args: list[str | int] = [self._ttl]
                for e in chunk:
                    data = "" if e.item is None else encode_text(e.item)
                    args += [e.version, data, e.item_id, (e.sku or "") if e.item is not None else "", len(e.levels)]
                    for level in e.levels:
                        args += [level.location, level.version, encode_text(level)]
                await self._put_items(keys=[ITEM_KEY.format(e.item_id) for e in chunk], args=args)
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None

    async def get_outcome(self, command_id: str) -> OutcomeChange | None:
        try:
            value = await self._redis.get(OUTCOME_KEY.format(command_id))
        except RedisError as exc:
            raise CacheUnavailable(repr(exc)) from None
        return decode_outcome(value) if value else None

    async def put_outcomes(self, outcomes: list[OutcomeChange]) -> None:
        try:
            for first in range(0, len(outcomes), CHUNK):
                chunk = outcomes[first : first + CHUNK]
                await self._put_all(
                    keys=[OUTCOME_KEY.format(o.command_id) for o in chunk],
                    args=[OUTCOME_TTL_SECONDS, *(encode_text(o) for o in chunk)],
                )
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
