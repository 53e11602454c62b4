"""The listener store's shortcuts on the way to the relay: what they hand over must be exactly
what the outbox and the item rows hold."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

from app.domain.catalogue import ItemUpdatedData
from app.domain.events import Event, EventType, encode_event
from app.domain.records import decode_change
from app.listener.planner import Planner
from app.listener.store import InventoryStore
from tests.support import events as builders

NOW = "2026-01-01T00:00:00.000Z"


async def _write(store: InventoryStore, events: list[Event]) -> None:
    planner = Planner(await store.load(events), now=NOW, now_epoch=1000.0, orphan_wait=5.0)
    for event in events:
        planner.apply(event, encode_event(event))
    await store.write(planner.plan, expected_positions={})


def test_the_records_kept_for_the_relay_are_the_stored_ones_once(tmp_path: Path) -> None:
    async def run() -> None:
        store = InventoryStore(tmp_path / "inventory.db")
        await store.open()
        try:
            item_id = str(uuid.uuid4())
            await _write(store, [builders.create(item_id, "KEEP-1", quantity=5)])
            await _write(
                store, [builders.reserve(item_id, 2), builders.release(item_id, 1), builders.adjust(item_id, 3)]
            )
            rows = await store.unsent_changes(100)
            assert len(rows) == 6  # an item record per batch, an outcome per command
            for seq, payload in rows:
                assert store.take_written(seq) == decode_change(payload)
                assert store.take_written(seq) is None
        finally:
            await store.close()

    asyncio.run(run())


def test_a_stock_change_and_an_edit_leave_the_item_row_as_a_full_write_would(tmp_path: Path) -> None:
    async def run() -> list[tuple[object, ...]]:
        store = InventoryStore(tmp_path / "inventory.db")
        await store.open()
        try:
            item_id = str(uuid.uuid4())
            await _write(store, [builders.create(item_id, "EDIT-1", quantity=5)])
            await _write(store, [builders.adjust(item_id, 4)])
            edit = builders.event(
                EventType.ITEM_UPDATED, item_id, ItemUpdatedData(name="Renamed", description="d", low_stock_threshold=3)
            )
            await _write(store, [builders.adjust(item_id, -2), edit])
            return builders.query(
                tmp_path / "inventory.db",
                "SELECT sku, name, description, low_stock_threshold, version, quantity, reserved FROM items",
            )
        finally:
            await store.close()

    assert asyncio.run(run()) == [("EDIT-1", "Renamed", "d", 3, 4, 7, 0)]


def test_the_relay_never_reads_a_transaction_that_may_still_roll_back(tmp_path: Path) -> None:
    """The relay shares the writer's connection, on which uncommitted rows are visible: a change
    it published from a batch that then rolled back would lose the real change with that seq."""

    async def run() -> None:
        store = InventoryStore(tmp_path / "inventory.db")
        await store.open()
        try:
            item_id = str(uuid.uuid4())
            await _write(store, [builders.create(item_id, "ROLL-1", quantity=5)])
            committed = await store.unsent_changes(100)
            with contextlib.suppress(RuntimeError):
                async with store._transaction() as conn:
                    await conn.execute(
                        "INSERT INTO changes (kind, item_id, payload, created_at) VALUES ('item', ?, '{}', ?)",
                        (item_id, NOW),
                    )
                    reading = asyncio.ensure_future(store.unsent_changes(100))
                    marking = asyncio.ensure_future(store.mark_sent(10**9))
                    for _ in range(20):
                        await asyncio.sleep(0)
                    assert not reading.done() and not marking.done()  # they wait for the end
                    raise RuntimeError("the batch fails after writing its records")
            assert await reading == committed
            await marking
            assert await store.unsent_changes(100) == []  # marked outside the rolled-back batch
        finally:
            await store.close()

    asyncio.run(run())
