"""Waiting for a condition, with a generous deadline (never a timing assertion)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Return the first truthy result of check(), or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last result: {last!r})")


def wait_until(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.05) -> T:
    """The blocking twin of ``eventually``, for tests that drive real processes with a sync client."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last result: {last!r})")
