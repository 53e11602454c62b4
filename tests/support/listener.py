"""Run the listener and its outbox relay in-process against a real event log and SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from app.cache.base import ItemCache
from app.cache.memory import MemoryCache
from app.eventlog.base import EventLog
from app.listener.relay import OutboxRelay
from app.listener.service import Listener, Retention, RetryPolicy
from app.listener.store import InventoryStore


@dataclass
class RunningListener:
    listener: Listener
    store: InventoryStore
    relay: OutboxRelay
    db: Path


@asynccontextmanager
async def running_listener(
    event_log: EventLog,
    data_dir: Path,
    *,
    cache: ItemCache | None = None,
    orphan_wait: float = 2.0,
    relay_running: bool = True,
    retention: Retention | None = None,
) -> AsyncIterator[RunningListener]:
    db = data_dir / "inventory.db"
    store = InventoryStore(db)
    await store.open()
    relay = OutboxRelay(store, event_log, cache or MemoryCache(ttl_seconds=300))
    listener = Listener(
        event_log, store, relay, batch_size=500, orphan_wait=orphan_wait,
        retry=RetryPolicy(max_attempts=3, base_seconds=0.01, max_seconds=0.1), retention=retention,
    )  # fmt: skip
    tasks = [asyncio.create_task(listener.run())]
    if relay_running:
        tasks.append(asyncio.create_task(relay.run()))
    try:
        yield RunningListener(listener, store, relay, db)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
