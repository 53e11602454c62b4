"""kill -9 the listener in the middle of a stream of 5,000 commands: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import pytest

from app.domain import ids, model, reservations
from app.domain.catalogue import StockAdjustedData, StockMovedData
from app.domain.catalogue.stock import StockReservedData
from app.domain.events import Event, EventType
from app.eventlog.kafka import KafkaEventLog
from app.eventlog.topics import TOPICS
from tests.support.app import base_env, kafka_env
from tests.support.events import adjust, create, message, query, release, reserve
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually

ITEMS = 20
COMMANDS = 5000
NOW = "2026-01-01T00:00:00.000Z"


def expected_state(events: list[Event], start_quantity: int) -> tuple[dict[str, model.Item], dict[str, str]]:
    """Apply the same events one by one with the domain rules: the state the database must reach."""
    items: dict[str, model.Item] = {}
    statuses: dict[str, str] = {}
    for e in events:
        if e.event_type is EventType.ITEM_CREATED:
            items[e.item_id] = model.Item(
                e.item_id,
                "x",
                "x",
                "",
                1,
                NOW,
                NOW,
                None,
                {"MAIN": model.StockLevel("MAIN", start_quantity, 0, 1, NOW)},
            )
            statuses[e.command_id] = "applied"
            continue
        item = items[e.item_id]
        if isinstance(e.data, StockAdjustedData):
            decision = model.adjust_stock(item, location="MAIN", delta=e.data.quantity, expected_version=None, now=NOW)
        elif e.event_type is EventType.STOCK_RESERVED:
            assert isinstance(e.data, StockReservedData)
            decision = reservations.reserve_stock(
                item,
                location="MAIN",
                quantity=e.data.quantity,
                expected_version=None,
                now=NOW,
                reservation_id=ids.reservation_id(e.item_id, e.command_id, None),
            )
        else:
            assert isinstance(e.data, StockMovedData)
            decision = reservations.release_stock(
                item, location="MAIN", quantity=e.data.quantity, expected_version=None, now=NOW
            )
        if isinstance(decision, model.Applied):
            items[e.item_id] = decision.item
            statuses[e.command_id] = "applied"
        else:
            statuses[e.command_id] = f"rejected:{decision.reason.value}"
    return items, statuses


def random_stock_events(item_ids: list[str], count: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    makers = [
        lambda i: adjust(i, rng.choice([-7, -3, -1, 1, 2, 5, 9])),
        lambda i: reserve(i, rng.randint(1, 12)),
        lambda i: release(i, rng.randint(1, 12)),
    ]
    return [rng.choice(makers)(rng.choice(item_ids)) for _ in range(count)]


def outcome_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return int(query(db, "SELECT COUNT(*) FROM command_outcomes")[0][0])
    except Exception:
        return 0


@pytest.mark.slow
@pytest.mark.kafka
async def test_sigkill_in_the_middle_of_5000_commands_loses_and_doubles_nothing(
    kafka_bootstrap: str, data_dir: Path, tmp_path: Path
) -> None:
    env = base_env(data_dir, **kafka_env(kafka_bootstrap, INVENTORY_LISTENER_BATCH="200"))
    publisher = KafkaEventLog(kafka_bootstrap, client_id="crash-test", topic_prefix=env["INVENTORY_KAFKA_TOPIC_PREFIX"])
    await publisher.start()
    await publisher.ensure_topics(TOPICS)
    listener = ServiceProcess("listener", env, tmp_path / "listener.log").start()
    db = data_dir / "inventory.db"
    try:
        item_ids = [str(uuid.uuid4()) for _ in range(ITEMS)]
        creates = [create(item_id, f"CRASH-{n}", quantity=100) for n, item_id in enumerate(item_ids)]
        await publisher.publish([message(e) for e in creates])
        await eventually(lambda: _reached(db, ITEMS), timeout=60)

        stream = random_stock_events(item_ids, COMMANDS, seed=20261127)
        killed = asyncio.Event()

        async def kill_mid_stream() -> None:
            await eventually(lambda: _reached(db, ITEMS + COMMANDS // 4), timeout=120, interval=0.01)
            listener.kill()
            killed.set()
            await asyncio.sleep(0.5)
            listener.start(wait=False)

        killer = asyncio.create_task(kill_mid_stream())
        for start in range(0, COMMANDS, 100):
            await publisher.publish([message(e) for e in stream[start : start + 100]])
        await killer
        assert killed.is_set()
        await eventually(lambda: _reached(db, ITEMS + COMMANDS), timeout=180, interval=0.2)
    finally:
        listener.stop()
        await publisher.stop()

    expected_items, expected_statuses = expected_state([*creates, *stream], start_quantity=100)
    rows = query(db, "SELECT item_id, quantity, reserved FROM stock_levels")
    assert {item_id: (q, r) for item_id, q, r in rows} == {
        item_id: (item.levels["MAIN"].quantity, item.levels["MAIN"].reserved)
        for item_id, item in expected_items.items()
    }
    actual_statuses = {
        command_id: status if reason is None else f"{status}:{reason}"
        for command_id, status, reason in query(db, "SELECT command_id, status, reason FROM command_outcomes")
    }
    assert actual_statuses == expected_statuses
    applied = sum(1 for s in expected_statuses.values() if s == "applied")
    assert query(db, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM history") == [(applied, applied)]
    assert query(db, "SELECT COUNT(*) FROM processed_events") == [(ITEMS + COMMANDS,)]
    assert query(db, "SELECT COUNT(*) FROM history WHERE reserved_after > quantity_after OR reserved_after < 0") == [
        (0,)
    ]


async def _reached(db: Path, count: int) -> bool:
    return outcome_count(db) >= count
