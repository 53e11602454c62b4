"""A live stream ends when what opened it no longer holds, and says why.

A stream is opened once and then stays open for hours, so checking its principal at the door is
not enough: a session expires, a user is disabled, a wall link is revoked. ``until_ended``
forwards a stream's messages and asks about every second why it should end (a memory lookup,
app/auth/revocation.py); with a reason it sends a last ``ended`` event, its data the reason
("expired", "signed-out", "revoked"), and closes. The pages then ask ``/ui/session`` what to do
(static/session.js): reconnect, go to the login page, or show a wall that its link ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

from litestar.response import ServerSentEventMessage

CHECK_SECONDS = 1.0
ENDED = "ended"


def ended_message(reason: str) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=reason, event=ENDED)


async def until_ended(
    messages: AsyncGenerator[ServerSentEventMessage, None],
    reason: Callable[[], str | None],
    check_seconds: float = CHECK_SECONDS,
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """``messages`` until ``reason()`` gives one (checked before every message and at least every
    ``check_seconds`` while none comes), then the ``ended`` event."""

    async def following() -> ServerSentEventMessage | None:
        return await anext(messages, None)

    pending: asyncio.Task[ServerSentEventMessage | None] | None = None
    try:
        while True:
            why = reason()
            if why is not None:
                yield ended_message(why)
                return
            if pending is None:
                pending = asyncio.create_task(following())
            done, _ = await asyncio.wait({pending}, timeout=check_seconds)
            if not done:
                continue
            message, pending = pending.result(), None
            if message is None:
                return
            yield message
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        await messages.aclose()
