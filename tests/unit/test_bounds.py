"""Every in-process cache, map and queue holds its bound when filled past it (docs/decisions.md,
"Memory"), and exports its size on /metrics."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

from prometheus_client import REGISTRY

from app.auth.login_limits import LoginLimiter
from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import Principal, TokenService
from app.auth.users import UserStore
from app.cache.base import ItemEntry
from app.cache.memory import MemoryCache
from app.commands.outcomes import MAX_WAITING, OutcomeWaiter
from app.domain.records import ItemSummary, OutcomeChange
from app.eventlog.embedded import EmbeddedEventLog
from app.http.errors import ApiError
from app.http.stream_limits import StreamLimiter, leased
from app.queries.service import FreshnessFloor
from app.reader import InventoryReader
from app.settings import ConfigError, load_settings

SECRET = "unit-test-secret-" + "x" * 40


def summary(item_id: str, sku: str) -> ItemSummary:
    return ItemSummary(item_id, sku, "n", "", 0, 0, 0, 1, "t", "t", None)


def _entries(structure: str) -> float | None:
    return REGISTRY.get_sample_value("inventory_memory_entries", {"structure": structure})


async def test_the_item_cache_keeps_at_most_its_items_and_outcomes() -> None:
    cache = MemoryCache(ttl_seconds=60, max_items=50, max_outcomes=20)
    for n in range(500):
        await cache.put_items([ItemEntry(f"i{n}", 1, summary(f"i{n}", f"S{n}"), f"S{n}")])
        await cache.put_outcomes([OutcomeChange(f"c{n}", f"i{n}", "inventory.stock.reserved", "MAIN", "applied",
                                                None, None, 1, "t", "t")])  # fmt: skip
    assert _entries("cache_items") == 50 and _entries("cache_outcomes") == 20
    assert _entries("cache_skus") == 50
    assert await cache.get_outcome("c499") is not None and await cache.get_outcome("c0") is None


def test_the_freshness_floor_keeps_the_newest_items() -> None:
    floor = FreshnessFloor(max_items=100)
    for n in range(1000):
        floor.raise_to(f"i{n}", 1)
    assert _entries("freshness_floor") == 100


def test_the_verified_token_cache_is_bounded() -> None:
    tokens = TokenService(SECRET, 3600)
    tokens.CACHE_SIZE = 30
    for n in range(100):
        tokens.verify(tokens.issue(Principal(f"user{n}", Role.VIEWER)).token)
        assert (_entries("verified_tokens") or 0) <= 30


async def test_the_login_limiter_forgets_a_spray_of_usernames() -> None:
    limiter = LoginLimiter(10, max_keys=200)

    async def wrong() -> None:
        return None

    for n in range(1_000):
        await limiter.attempt(f"user{n}", f"10.0.{n // 250}.{n % 250}", wrong)
    assert 0 < (_entries("login_limit_keys") or 0) <= 3 * 200


async def test_the_outcome_waiter_bounds_its_waiters_and_items(tmp_path: Path) -> None:
    waiter = OutcomeWaiter(EmbeddedEventLog(tmp_path / "log.db"), InventoryReader(tmp_path / "inventory.db"))
    for n in range(20_000):
        waiter._remember(f"i{n}", None)
    assert _entries("outcome_latest_items") == 10_000
    futures = [waiter.expect(f"c{n}") for n in range(MAX_WAITING + 50)]
    assert _entries("outcome_waiters") == MAX_WAITING
    # Beyond the bound a request does not wait: it is answered at once.
    assert await waiter.wait(f"c{MAX_WAITING + 1}", timeout=30) is None
    for n, _ in enumerate(futures):
        waiter.forget(f"c{n}")
    assert _entries("outcome_waiters") == 0


async def test_streams_are_capped_per_user_and_given_back() -> None:
    limiter = StreamLimiter(per_user=2)
    viewer, clerk = Principal("viewer", Role.VIEWER), Principal("clerk", Role.CLERK)
    first, second = limiter.open(viewer), limiter.open(viewer)
    try:
        limiter.open(viewer)
        raise AssertionError("a third stream was allowed")
    except ApiError as refused:
        assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    limiter.open(clerk).release()
    first.release()
    first.release()  # twice is once
    assert limiter.open_count(viewer) == 1

    async def changes() -> object:
        yield "change"

    stream = leased(limiter.open(viewer), changes())  # type: ignore[arg-type]
    assert limiter.open_count(viewer) == 2
    assert [m async for m in stream] == ["change"]
    assert limiter.open_count(viewer) == 1
    never_started = leased(limiter.open(viewer), changes())  # type: ignore[arg-type]
    del never_started  # a response that was never sent still gives its place back
    gc.collect()
    assert limiter.open_count(viewer) == 1
    second.release()
    assert limiter.open_count(viewer) == 0 and _entries("stream_users") == 0


def test_the_stream_cap_is_a_setting(tmp_path: Path) -> None:
    env = {"INVENTORY_DATA_DIR": str(tmp_path), "INVENTORY_JWT_SECRET": SECRET}
    assert load_settings(env).max_streams_per_user == 20
    assert load_settings(env | {"INVENTORY_MAX_STREAMS_PER_USER": "5"}).max_streams_per_user == 5
    try:
        load_settings(env | {"INVENTORY_MAX_STREAMS_PER_USER": "0"})
        raise AssertionError("0 was accepted")
    except ConfigError as exc:
        assert "INVENTORY_MAX_STREAMS_PER_USER" in str(exc)


async def test_revoked_sessions_are_bounded_and_a_full_list_ends_all_of_a_users_sessions(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.db")
    await users.open()
    try:
        await users.add("someone", Role.CLERK, "long-enough-password")
        revocations = Revocations(users)
        await revocations.refresh()
        tokens = TokenService(SECRET, 3600, revocations)
        principal = await users.authenticate("someone", "long-enough-password")
        assert principal is not None
        issued = [tokens.verify(tokens.issue(principal).token) for _ in range(5)]
        expires = int(time.time()) + 3600
        for session in issued[:3]:
            await users.revoke_session("someone", session.session, expires, max_sessions=3)
        await revocations.refresh()
        assert [revocations.allows(p) for p in issued] == [False, False, False, True, True]
        assert _entries("revoked_sessions") == 3
        # The list is full: this logout ends every session of the user instead of growing it.
        await users.revoke_session("someone", issued[3].session, expires, max_sessions=3)
        await revocations.refresh()
        assert not any(revocations.allows(p) for p in issued)
        assert _entries("revoked_sessions") == 3
        renewed = await users.authenticate("someone", "long-enough-password")
        assert renewed is not None and revocations.allows(tokens.verify(tokens.issue(renewed).token))
    finally:
        await users.close()


async def test_a_token_newer_than_the_snapshot_is_accepted_until_the_next_refresh(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.db")
    await users.open()
    try:
        revocations = Revocations(users)
        await revocations.refresh()
        # Added by another process after this one's snapshot: its fresh token is not refused.
        await users.add("newcomer", Role.VIEWER, "long-enough-password")
        fresh = Principal("newcomer", Role.VIEWER, issued_at=int(time.time()))
        assert revocations.allows(fresh)
        # One issued long before the snapshot for a user it does not know was removed.
        assert not revocations.allows(Principal("ghost", Role.VIEWER, issued_at=int(time.time()) - 60))
        await users.set_role("newcomer", Role.CLERK)
        await asyncio.sleep(0)
        await revocations.refresh()
        assert not revocations.allows(fresh)
    finally:
        await users.close()
