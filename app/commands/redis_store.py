"""Idempotency-Keys in Redis: one record per key that every command node sees (docs/scaling.md).

A key's record is the accepted command (its request hash, command id and event), written with
``SET NX`` and the key's lifetime, so of two nodes racing on one key exactly one records it and
the other answers as its retry: the same request gets the same answer (or the same event is
published again, which the listener drops), another request under the key gets the 422. The
answer, once there is one, sits next to the record and expires with it.

Redis away: ``KeysUnavailable`` (a 503 with Retry-After), never a local record another node
could not see. Redis that lost its data: a retry is recorded anew with the same derived ids
(app/commands/service.py ``keyed_ids``), and the listener drops the second copy of the event.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.commands.errors import KeysUnavailable
from app.commands.store import AcceptedCommand, IdempotencyKeyTaken

RECORD_KEY = "inv:idem:{}"
REPLY_KEY = "inv:idem:{}:reply"

# KEYS: the record, its answer; ARGV: the answer. Kept only while the record lives, and the
# first answer stays (a retry answered on another node meanwhile does not replace it).
KEEP_REPLY = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  return 0
end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl, 'NX') then
  return 1
end
return 0
"""


class _Reply(msgspec.Struct, array_like=True):
    command_id: str
    status: int
    headers: dict[str, str]
    body: bytes


_encode = msgspec.msgpack.Encoder().encode
_decode_record = msgspec.msgpack.Decoder(AcceptedCommand).decode
_decode_reply = msgspec.msgpack.Decoder(_Reply).decode


def key_name(scope: str, key: str) -> str:
    """The Redis name of an actor's key: hashed, so any key and actor make a short name."""
    return hashlib.sha256(f"{len(scope)}:{scope}:{key}".encode()).hexdigest()


class RedisCommandKeys:
    """``CommandKeys`` (app/commands/store.py) in Redis."""

    def __init__(self, url: str, *, timeout: float = 1.0) -> None:
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            health_check_interval=10,
        )
        self._keep_reply = self._redis.register_script(KEEP_REPLY)

    async def close(self) -> None:
        await self._redis.aclose()

    async def find(self, scope: str, key: str) -> AcceptedCommand | None:
        name = key_name(scope, key)
        try:
            record, reply = await self._redis.mget([RECORD_KEY.format(name), REPLY_KEY.format(name)])
        except RedisError as exc:
            raise KeysUnavailable(repr(exc)) from None
        if not isinstance(record, bytes):
            return None
        command = _decode_record(record)
        if isinstance(reply, bytes):
            answer = _decode_reply(reply)
            if answer.command_id == command.command_id:
                command = dataclasses.replace(
                    command, response_status=answer.status, response_headers=answer.headers, response_body=answer.body
                )
        return command

    async def claim(self, command: AcceptedCommand) -> None:
        assert command.idem_scope is not None and command.idem_key is not None
        lifetime = (command.idem_expires or 0.0) - time.time()
        try:
            claimed = await self._redis.set(
                RECORD_KEY.format(key_name(command.idem_scope, command.idem_key)),
                _encode(command),
                px=max(1, int(lifetime * 1000)),
                nx=True,
            )
        except RedisError as exc:
            raise KeysUnavailable(repr(exc)) from None
        if not claimed:
            raise IdempotencyKeyTaken(command.idem_key)

    async def keep_reply(self, command: AcceptedCommand, status: int, headers: dict[str, str], body: bytes) -> None:
        assert command.idem_scope is not None and command.idem_key is not None
        name = key_name(command.idem_scope, command.idem_key)
        try:
            await self._keep_reply(
                keys=[RECORD_KEY.format(name), REPLY_KEY.format(name)],
                args=[_encode(_Reply(command.command_id, status, headers, body))],
            )
        except RedisError as exc:
            raise KeysUnavailable(repr(exc)) from None
