"""At most N live streams (the API's and the pages') per user at a time, each process.

One viewer opening thousands of streams would hold memory and a share of every change's
fan-out; beyond the cap the next stream is a 429 in the one error shape, with Retry-After.
Kiosk links (read-only wall links) count under their own principal (``kiosk:<id>``) the same way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TypeVar

from app.auth.tokens import Principal
from app.auth.users import MAX_USERS
from app.http.errors import ApiError
from app.metrics import STREAMS_REFUSED, track_size

T = TypeVar("T")
RETRY_AFTER_SECONDS = 10


class StreamLease:
    """One open stream. Released when the stream ends, or when it is dropped unstarted."""

    def __init__(self, limiter: StreamLimiter, key: str) -> None:
        self._limiter = limiter
        self._key = key
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self._key)

    def __del__(self) -> None:
        self.release()


class StreamLimiter:
    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        # Only users with a stream open: at most one entry per user.
        self._open: dict[str, int] = {}
        track_size("stream_users", MAX_USERS, lambda: len(self._open))

    def open(self, user: Principal) -> StreamLease:
        key = user.username
        count = self._open.get(key, 0)
        if count >= self.per_user:
            STREAMS_REFUSED.inc()
            raise ApiError(
                429,
                f"at most {self.per_user} live streams per user; close one and retry",
                details={"limit": self.per_user},
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._open[key] = count + 1
        return StreamLease(self, key)

    def open_count(self, user: Principal) -> int:
        return self._open.get(user.username, 0)

    def _release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)


async def leased(lease: StreamLease, stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """``stream``, holding ``lease`` until it ends (finished, failed or disconnected)."""
    try:
        async for message in stream:
            yield message
    finally:
        lease.release()
        await stream.aclose()
