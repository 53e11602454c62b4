"""After each commit: refresh the read cache, then publish the change records, then mark them sent.

The order matters. The cache is refreshed before the change is announced, so whoever hears
of a change (a client waiting with ``Prefer: wait``, an SSE subscriber) finds it in the cache
too. Change records stay in the outbox until published, so a crash between commit and
publish only delays them until the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.cache.base import CacheUnavailable, ItemCache, entries_from_changes, entry_for
from app.domain.events import CHANGES_TOPIC
from app.domain.records import Change, decode_change
from app.eventlog.base import EventLog, LogUnavailable, Message
from app.jsontext import change_record
from app.listener.store import InventoryStore
from app.metrics import OUTBOX_BACKLOG

log = logging.getLogger(__name__)

# Each page ends with a commit of its own (mark_sent): large pages keep those few in a backlog.
PAGE = 2000
IDLE_SECONDS = 1.0
RESYNC_CHECK_SECONDS = 2.0


def change_message(seq: int, payload: str, item_id: str) -> Message:
    """The change record as published: its payload with the commit sequence number first."""
    return Message(CHANGES_TOPIC, item_id.encode(), change_record(seq, payload), (("seq", str(seq).encode()),))


class OutboxRelay:
    def __init__(self, store: InventoryStore, event_log: EventLog, cache: ItemCache) -> None:
        self._store = store
        self._log = event_log
        self._cache = cache
        self._wake = asyncio.Event()
        self._cache_server: str | None = None
        self._cache_stale = True  # until the first full refresh
        self._next_cache_check = 0.0
        self.published_seq = 0
        self.cache_ok = True
        self.log_ok = True

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._check_cache()
                await self.flush()
            except Exception:
                log.exception("outbox relay round failed; retrying")
                await asyncio.sleep(IDLE_SECONDS)

    async def flush(self) -> None:
        """Publish every unsent change record, oldest first."""
        while True:
            rows = await self._store.unsent_changes(PAGE)
            OUTBOX_BACKLOG.set(len(rows) if len(rows) < PAGE else await self._store.unsent_count())
            if not rows:
                return
            changes: list[Change] = [self._store.take_written(seq) or decode_change(payload) for seq, payload in rows]
            await self._refresh_cache(changes)
            try:
                await self._log.publish(
                    [
                        change_message(seq, payload, change.item_id)
                        for (seq, payload), change in zip(rows, changes, strict=True)
                    ]
                )
            except LogUnavailable as exc:
                if self.log_ok:
                    log.warning("change feed unreachable, will retry: %s", exc)
                self.log_ok = False
                return
            self.log_ok = True
            await self._store.mark_sent(rows[-1][0])
            self.published_seq = rows[-1][0]

    async def _refresh_cache(self, changes: list[Change]) -> None:
        items, outcomes = entries_from_changes(changes)
        try:
            await self._cache.put_items(items)
            await self._cache.put_outcomes(outcomes)
            self.cache_ok = True
        except CacheUnavailable as exc:
            # Notifications must not wait for the cache; the full refresh below repairs it.
            if self.cache_ok:
                log.warning("cache unreachable, serving reads from SQLite until it returns: %s", exc)
            self.cache_ok = False
            self._cache_stale = True

    async def _check_cache(self) -> None:
        """Refresh every item when the cache missed writes or its server restarted."""
        now = asyncio.get_running_loop().time()
        if now < self._next_cache_check and not self._cache_stale:
            return
        self._next_cache_check = now + RESYNC_CHECK_SECONDS
        server = await self._cache.server_id()
        if server is None:
            self.cache_ok = False
            self._cache_stale = True
            return
        if server != self._cache_server:
            self._cache_stale = True
        if self._cache_stale:
            try:
                await self.refresh_all_items()
            except CacheUnavailable:
                self.cache_ok = False
                return
            self._cache_server = server
            self._cache_stale = False
            self.cache_ok = True

    async def refresh_all_items(self) -> int:
        count = 0
        after = ""
        while True:
            items = await self._store.items_page(after, PAGE)
            if not items:
                return count
            await self._cache.put_items([entry_for(i) for i in items])
            count += len(items)
            after = items[-1].id
