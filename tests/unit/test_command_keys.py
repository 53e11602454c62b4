"""Keyed commands: ids derived from the actor, the key and the request, and the keys' records
in Redis (a real one), which two command nodes racing on one key agree on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.commands.errors import KeysUnavailable
from app.commands.redis_store import RECORD_KEY, REPLY_KEY, RedisCommandKeys, key_name
from app.commands.service import CommandService, Submission, keyed_ids, record_named
from app.commands.store import AcceptedCommand, IdempotencyKeyTaken
from app.domain.catalogue import Places, decode_event
from app.domain.catalogue.stock import RESERVE
from tests.support.services import RedisServer, free_port

HASH = "a" * 64
ITEM = "9b0c2f9e-3f5d-4c1a-8f7e-2a6b5c4d3e21"


def test_the_same_actor_key_and_request_get_the_same_ids() -> None:
    first, again = keyed_ids("ada", "key-1", HASH), keyed_ids("ada", "key-1", HASH)
    assert first == again
    assert len({first.command_id, first.event_id, first.item_id}) == 3
    for value in (first.command_id, first.event_id, first.item_id):
        assert str(uuid.UUID(value)) == value


def test_another_actor_key_or_request_gets_other_ids() -> None:
    first = keyed_ids("ada", "key-1", HASH)
    others = [
        keyed_ids("bob", "key-1", HASH),
        keyed_ids("ada", "key-2", HASH),
        keyed_ids("ada", "key-1", "b" * 64),
        # No ambiguity where the actor ends and the key begins.
        keyed_ids("ada:", "key-1", HASH),
        keyed_ids("ad", "a:key-1", HASH),
    ]
    ids = {first.command_id, *(other.command_id for other in others)}
    assert len(ids) == 1 + len(others)
    assert first.event_id not in {other.event_id for other in others}


def command(key: str, *, request_hash: str = HASH, lifetime: float = 3600.0, actor: str = "ada") -> AcceptedCommand:
    ids = keyed_ids(actor, key, request_hash)
    return AcceptedCommand(
        command_id=ids.command_id,
        item_id=str(uuid.uuid4()),
        event_type="inventory.stock.reserved",
        sku=None,
        actor=actor,
        request_id="req-1",
        submitted_at="2026-01-01T00:00:00Z",
        state="publishing",
        topic="inventory.stock",
        event=b'{"event_id": "e"}',
        idem_scope=actor,
        idem_key=key,
        request_hash=request_hash,
        idem_expires=time.time() + lifetime,
    )


@pytest.fixture
async def keys(redis_server: RedisServer) -> AsyncIterator[RedisCommandKeys]:
    store = RedisCommandKeys(redis_server.url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_of_two_concurrent_claims_of_one_key_exactly_one_wins(
    redis_server: RedisServer, keys: RedisCommandKeys
) -> None:
    other_node = RedisCommandKeys(redis_server.url)
    key = f"race-{uuid.uuid4()}"
    mine, theirs = command(key), command(key, request_hash="c" * 64)
    try:
        results = await asyncio.gather(keys.claim(mine), other_node.claim(theirs), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["IdempotencyKeyTaken", "NoneType"]
        winner = mine if results[0] is None else theirs
        # Both see the winner's record.
        for store in (keys, other_node):
            found = await store.find("ada", key)
            assert found is not None
            assert (found.command_id, found.request_hash, found.event) == (
                winner.command_id,
                winner.request_hash,
                winner.event,
            )
            assert found.response_status is None
        with pytest.raises(IdempotencyKeyTaken):
            await keys.claim(winner)
    finally:
        await other_node.close()


async def test_a_claim_lives_as_long_as_the_key_and_the_answer_with_it(
    keys: RedisCommandKeys, raw: aioredis.Redis
) -> None:
    key = f"life-{uuid.uuid4()}"
    accepted = command(key, lifetime=300.0)
    await keys.claim(accepted)
    name = key_name("ada", key)
    ttl = await raw.pttl(RECORD_KEY.format(name))
    assert 290_000 < ttl <= 300_000
    await keys.keep_reply(accepted, 202, {"X-Command-ID": accepted.command_id}, b'{"status":"pending"}')
    reply_ttl = await raw.pttl(REPLY_KEY.format(name))
    assert 0 < reply_ttl <= ttl
    found = await keys.find("ada", key)
    assert found is not None
    assert (found.response_status, found.response_headers, found.response_body) == (
        202,
        {"X-Command-ID": accepted.command_id},
        b'{"status":"pending"}',
    )
    # The first answer stays.
    await keys.keep_reply(accepted, 200, {}, b"{}")
    again = await keys.find("ada", key)
    assert again is not None and again.response_status == 202
    # Another actor's same key is another record.
    assert await keys.find("bob", key) is None


async def test_an_answer_for_a_record_that_is_gone_is_not_kept(keys: RedisCommandKeys, raw: aioredis.Redis) -> None:
    key = f"gone-{uuid.uuid4()}"
    accepted = command(key)
    await keys.claim(accepted)
    await raw.delete(RECORD_KEY.format(key_name("ada", key)))
    await keys.keep_reply(accepted, 202, {}, b"{}")
    assert await raw.exists(REPLY_KEY.format(key_name("ada", key))) == 0
    assert await keys.find("ada", key) is None


async def test_redis_away_is_keys_unavailable() -> None:
    away = RedisCommandKeys(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        with pytest.raises(KeysUnavailable):
            await away.find("ada", "k")
        with pytest.raises(KeysUnavailable):
            await away.claim(command("k"))
        with pytest.raises(KeysUnavailable):
            await away.keep_reply(command("k"), 202, {}, b"{}")
    finally:
        await away.close()


def _service() -> CommandService:
    unused: Any = None
    return CommandService(unused, unused, unused, unused, unused, locations=("S001",), default_location="S001")


def _submission(*, actor: str = "ada", key: str | None = "key-1", derived: bool = True) -> Submission:
    command = RESERVE.check({"quantity": 2}, item_id=ITEM, places=Places(("S001",), "S001"))
    return Submission(
        command=command,
        actor=actor,
        request_id=str(uuid.uuid4()),
        request_hash=HASH,
        idempotency_key=key,
        derived_ids=derived,
    )


def _ids(accepted: AcceptedCommand) -> tuple[str, str, object]:
    event = decode_event(accepted.event)
    return event.command_id, event.event_id, record_named(accepted.event)


def test_a_keyed_command_makes_the_same_event_ids_and_reservation_each_time() -> None:
    service = _service()
    first = service._new_command(_submission(), key="key-1")
    again = _service()._new_command(_submission(), key="key-1")  # another node
    assert _ids(first) == _ids(again)
    expected = keyed_ids("ada", "key-1", HASH)
    assert _ids(first)[:2] == (expected.command_id, expected.event_id)
    assert first.command_id == expected.command_id
    # Another actor: other ids, another reservation.
    other = service._new_command(_submission(actor="bob"), key="key-1")
    assert set(_ids(other)).isdisjoint(_ids(first))


def test_unkeyed_and_not_derived_commands_keep_random_ids() -> None:
    service = _service()
    unkeyed = [service._new_command(_submission(key=None)) for _ in range(2)]
    assert _ids(unkeyed[0])[:2] != _ids(unkeyed[1])[:2]
    replays = [service._new_command(_submission(derived=False), key="request-id:r1") for _ in range(2)]
    assert _ids(replays[0])[:2] != _ids(replays[1])[:2]
