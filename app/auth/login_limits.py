"""Login limits that slow an attacker down without letting them lock anyone out.

With N = INVENTORY_LOGIN_ATTEMPTS_PER_MINUTE (10):

* one username from one address: at most N failed attempts in the last minute; further attempts
  from there are answered 429 (a success clears that pair's count);
* one address: at most 5N attempts of any kind per minute (429 beyond);
* one username from everywhere: once it had 5N failures in the last minute, every attempt for
  it waits (1 s, up to 5 s as failures pile up) before its password is checked: slower, never
  refused, so guessing from many addresses cannot lock the real user out;
* password checks (Argon2, slow and memory-hungry on purpose) run at most ``hash_slots`` at a
  time, and one address at most one at a time: a flood from one address queues behind itself
  while other addresses still find a free slot.

Refusals happen before any hashing, and only attempts that were let through are counted. Every
table is bounded: a window keeps at most its limit of timestamps, and a table keeps at most
``max_keys`` keys (expired keys go first, then the oldest).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from app.metrics import track_size

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

WINDOW_SECONDS = 60.0


class _Windows:
    """Timestamps of recent events per key, in a table of bounded size."""

    def __init__(self, per_key: int, max_keys: int) -> None:
        self._per_key = per_key
        self._max_keys = max_keys
        self._table: dict[Hashable, deque[float]] = {}

    def count(self, key: Hashable, now: float) -> int:
        window = self._table.get(key)
        if window is None:
            return 0
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if not window:
            del self._table[key]
            return 0
        return len(window)

    def retry_after(self, key: Hashable, now: float) -> int:
        window = self._table.get(key)
        oldest = window[0] if window else now
        return max(1, int(WINDOW_SECONDS - (now - oldest)) + 1)

    def add(self, key: Hashable, now: float) -> None:
        window = self._table.get(key)
        if window is None:
            if len(self._table) >= self._max_keys:
                self._make_room(now)
            window = self._table[key] = deque(maxlen=self._per_key)
        window.append(now)

    def clear(self, key: Hashable) -> None:
        self._table.pop(key, None)

    def __len__(self) -> int:
        return len(self._table)

    def _make_room(self, now: float) -> None:
        expired = [key for key, window in self._table.items() if not window or window[-1] <= now - WINDOW_SECONDS]
        for key in expired:
            del self._table[key]
        if len(self._table) >= self._max_keys * 9 // 10:
            # Still nearly full of live keys (a spray of names): drop the oldest tenth.
            for key in list(self._table)[: max(1, self._max_keys // 10)]:
                del self._table[key]


class LoginLimiter:
    ADDRESS_FACTOR = 5
    USER_FACTOR = 5
    SLOWDOWN_SECONDS = 1.0
    MAX_SLOWDOWN_SECONDS = 5.0

    def __init__(self, per_minute: int, *, hash_slots: int = 2, max_keys: int = 50_000) -> None:
        self._pair_limit = per_minute
        self._address_limit = per_minute * self.ADDRESS_FACTOR
        self._user_ceiling = per_minute * self.USER_FACTOR
        self._pair_failures = _Windows(self._pair_limit, max_keys)
        self._address_attempts = _Windows(self._address_limit, max_keys)
        self._user_failures = _Windows(self._user_ceiling * 5, max_keys)
        self._hash_slots = hash_slots
        self._slots: asyncio.Semaphore | None = None
        # One password check at a time per address: a lock, and how many hold or wait for it.
        self._address_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        track_size("login_limit_keys", 3 * max_keys, self.tracked_keys)

    async def attempt(self, username: str, address: str, verify: Callable[[], Awaitable[T | None]]) -> T | None:
        """Run ``verify`` (the password check) if the limits allow it; raise LoginRefused if not.
        A None result counts as a failure."""
        now = time.monotonic()
        pair = (username, address)
        if self._pair_failures.count(pair, now) >= self._pair_limit:
            raise _too_many(self._pair_failures.retry_after(pair, now))
        if self._address_attempts.count(address, now) >= self._address_limit:
            raise _too_many(self._address_attempts.retry_after(address, now))
        self._address_attempts.add(address, now)
        failures = self._user_failures.count(username, now)
        if failures >= self._user_ceiling:
            await asyncio.sleep(min(self.MAX_SLOWDOWN_SECONDS, self.SLOWDOWN_SECONDS * failures / self._user_ceiling))
        result = await self._checked(address, verify)
        now = time.monotonic()
        if result is None:
            self._pair_failures.add(pair, now)
            self._user_failures.add(username, now)
        else:
            self._pair_failures.clear(pair)
        return result

    async def _checked(self, address: str, verify: Callable[[], Awaitable[T | None]]) -> T | None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._hash_slots)
        lock, users = self._address_locks.get(address) or (asyncio.Lock(), 0)
        self._address_locks[address] = (lock, users + 1)
        try:
            async with lock, self._slots:
                return await verify()
        finally:
            lock, users = self._address_locks[address]
            if users <= 1:
                del self._address_locks[address]
            else:
                self._address_locks[address] = (lock, users - 1)

    def tracked_keys(self) -> int:
        """How many keys the tables hold (for tests of the memory bound)."""
        return len(self._pair_failures) + len(self._address_attempts) + len(self._user_failures)


class LoginRefused(Exception):
    """Too many attempts: try again after ``retry_after`` seconds. The HTTP edges answer 429."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many login attempts; retry after {retry_after} s")
        self.retry_after = retry_after


def _too_many(retry_after: int) -> LoginRefused:
    return LoginRefused(retry_after)
