"""Stock alerts decided by the listener's planner and written by its store: the hysteresis of
app/domain/alerts.py through real batches, the default threshold, a new level, edits, and the
alert rows and change records the store writes (an embedded SQLite file, as the listener's)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from app.domain.alerts import AlertState
from app.domain.catalogue import ItemCreatedData, ItemUpdatedData
from app.domain.events import Event, EventType, encode_event
from app.listener.planner import Loaded, Planner
from app.listener.store import InventoryStore
from tests.support import events as builders

NOW = "2026-01-01T00:00:00.000Z"


def create(item_id: str, quantity: int, threshold: int | None = None, location: str = "MAIN") -> Event:
    data = ItemCreatedData(sku=f"SKU-{item_id[:6]}", name="Socks", quantity=quantity, low_stock_threshold=threshold)
    return builders.event(EventType.ITEM_CREATED, item_id, data, location=location)


def kinds(planner: Planner) -> list[tuple[str, str]]:
    return [(alert.location, alert.kind.value) for alert in planner.plan.alerts]


def plan(events: list[Event], *, default_threshold: int = 5, loaded: Loaded | None = None) -> Planner:
    planner = Planner(
        loaded or Loaded(), now=NOW, now_epoch=1000.0, orphan_wait=5.0, default_threshold=default_threshold
    )
    for event in events:
        planner.apply(event, encode_event(event))
    return planner


# --- through the planner (one batch) -----------------------------------------------------------


def test_a_level_bouncing_between_0_and_1_alerts_once() -> None:
    item_id = str(uuid.uuid4())
    bounce = [builders.count(item_id, n) for n in (0, 1, 0, 1, 0, 1)]
    planner = plan([create(item_id, 20, threshold=10), *bounce])
    assert kinds(planner) == [("MAIN", "out_of_stock")]
    (level, _), *_ = planner.plan.levels.values()
    assert level.alert is AlertState.OUT


def test_low_then_out_then_back_in_stock_past_the_margin() -> None:
    item_id = str(uuid.uuid4())
    # Threshold 10: low at 10, out at 0, back once above 2 (the margin is 2), ok again above 12.
    steps = [builders.count(item_id, n) for n in (11, 10, 9, 0, 2, 3, 12, 13, 10)]
    planner = plan([create(item_id, 20, threshold=10), *steps])
    assert [kind for _, kind in kinds(planner)] == ["low_stock", "out_of_stock", "back_in_stock", "low_stock"]
    assert [(a.available, a.threshold) for a in planner.plan.alerts] == [(10, 10), (0, 10), (3, 10), (10, 10)]


def test_an_item_without_a_threshold_uses_the_default_given_to_the_planner() -> None:
    item_id = str(uuid.uuid4())
    events = [create(item_id, 50), builders.count(item_id, 8)]
    assert kinds(plan(events, default_threshold=5)) == []
    low = plan(events, default_threshold=8)
    assert kinds(low) == [("MAIN", "low_stock")]
    assert low.plan.alerts[0].threshold == 8


def test_reserving_makes_a_level_low_and_releasing_gives_it_back_silently() -> None:
    item_id = str(uuid.uuid4())
    events = [
        create(item_id, 10, threshold=5),
        builders.reserve(item_id, 6),  # 4 available: low
        builders.release(item_id, 6),  # 10 available: above threshold + margin, silently ok
        builders.reserve(item_id, 6),  # low again
    ]
    assert [kind for _, kind in kinds(plan(events))] == ["low_stock", "low_stock"]


def test_a_new_level_starts_from_what_it_is_without_an_alert() -> None:
    item_id = str(uuid.uuid4())
    # Created with nothing (out), and a store that first gets 2 (low): nobody is paged for either.
    events = [create(item_id, 0, threshold=5), builders.adjust(item_id, 2, location="S001")]
    planner = plan(events)
    assert kinds(planner) == []
    states = {location: level.alert for (_, location), (level, _) in planner.plan.levels.items()}
    assert states == {"MAIN": AlertState.OUT, "S001": AlertState.LOW}
    # Its next change is decided from there: MAIN receiving stock is back in stock.
    planner = plan([*events, builders.adjust(item_id, 20), builders.adjust(item_id, -2, location="S001")])
    assert kinds(planner) == [("MAIN", "back_in_stock"), ("S001", "out_of_stock")]


def test_a_transfer_decides_both_of_its_levels() -> None:
    item_id = str(uuid.uuid4())
    events = [
        create(item_id, 12, threshold=5),
        builders.adjust(item_id, 1, location="S001"),
        builders.adjust(item_id, -1, location="S001"),  # S001 out
        builders.transfer(item_id, 8, "MAIN", "S001"),  # MAIN 4: low; S001 8: back in stock
    ]
    assert kinds(plan(events)) == [("S001", "out_of_stock"), ("MAIN", "low_stock"), ("S001", "back_in_stock")]


def test_the_state_loaded_with_the_level_carries_over_between_batches() -> None:
    item_id = str(uuid.uuid4())
    first = plan([create(item_id, 20, threshold=10), builders.count(item_id, 0)])
    loaded = Loaded(items={item_id: first.plan.new_items[item_id]})
    # Still out at 1 (not above the margin): the loaded state says it already alerted.
    assert kinds(plan([builders.count(item_id, 1)], loaded=loaded)) == []
    assert kinds(plan([builders.count(item_id, 3)], loaded=loaded)) == [("MAIN", "back_in_stock")]


def test_an_edit_is_marked_edited_and_a_new_threshold_waits_for_the_next_change() -> None:
    item_id = str(uuid.uuid4())
    edit = builders.event(EventType.ITEM_UPDATED, item_id, ItemUpdatedData(name="Socks", low_stock_threshold=30))
    planner = plan([create(item_id, 20, threshold=5), edit])
    assert kinds(planner) == []  # no level moved: nothing decided yet
    (change,) = planner.plan.item_changes()
    assert change.edited is True
    planner = plan([create(item_id, 20, threshold=5), edit, builders.adjust(item_id, -1)])
    assert kinds(planner) == [("MAIN", "low_stock")]  # 19 <= 30, met at the next change
    stock_only = plan([create(item_id, 20), builders.adjust(item_id, -1)])
    assert [c.edited for c in stock_only.plan.item_changes()] == [False]


def test_the_change_record_carries_the_alerts_it_is_given_by_item() -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    planner = plan([create(first, 5), create(second, 5), builders.count(first, 0)])
    alerts = [row.record(41, NOW) for row in planner.plan.alerts]
    changes = {c.item_id: c for c in planner.plan.item_changes(alerts)}
    assert [(a.id, a.kind, a.location) for a in changes[first].alerts] == [(41, "out_of_stock", "MAIN")]
    assert changes[second].alerts == []
    assert changes[first].with_levels(frozenset({"S001"})).alerts == []


# --- written by the store, loaded back ------------------------------------------------------------


async def _write(store: InventoryStore, events: list[Event], default_threshold: int = 5) -> Planner:
    planner = Planner(
        await store.load(events), now=NOW, now_epoch=1000.0, orphan_wait=5.0, default_threshold=default_threshold
    )
    for event in events:
        planner.apply(event, encode_event(event))
    await store.write(planner.plan, expected_positions={})
    return planner


async def _store_round_trip(path: Path) -> None:
    store = InventoryStore(path)
    await store.open()
    try:
        item_id = str(uuid.uuid4())
        await _write(store, [create(item_id, 20, threshold=10)])
        await _write(store, [builders.count(item_id, 0)])
        # Each batch loads the state the previous one wrote: 1 then 0 again alerts nothing.
        await _write(store, [builders.count(item_id, 1)])
        await _write(store, [builders.count(item_id, 0)])
        await _write(store, [builders.count(item_id, 9), builders.count(item_id, 0), builders.count(item_id, 14)])
        rows = builders.query(path, "SELECT id, kind, available, threshold, sku FROM alerts ORDER BY id")
        assert [(kind, available) for _, kind, available, _, _ in rows] == [
            ("out_of_stock", 0),
            ("back_in_stock", 9),
            ("out_of_stock", 0),
            ("back_in_stock", 14),
        ]
        ids = [row[0] for row in rows]
        assert ids == sorted(set(ids))
        state = builders.query(path, "SELECT alert FROM stock_levels WHERE item_id = ?", (item_id,))
        assert state == [("ok",)]
        # The change records in the outbox carry the alerts with the ids of their rows.
        payloads = [p for (p,) in builders.query(path, "SELECT payload FROM changes WHERE kind = 'item' ORDER BY seq")]
        carried = [a for p in payloads for a in json.loads(p).get("alerts", [])]
        assert [a["id"] for a in carried] == ids
        assert all(a["item_id"] == item_id and a["location"] == "MAIN" for a in carried)
    finally:
        await store.close()


def test_the_store_keeps_the_state_between_batches_and_numbers_the_alerts(tmp_path: Path) -> None:
    asyncio.run(_store_round_trip(tmp_path / "inventory.db"))


@pytest.mark.parametrize("threshold", [None, 7])
def test_the_threshold_recorded_is_the_one_in_force(tmp_path: Path, threshold: int | None) -> None:
    async def run() -> list[tuple[int, ...]]:
        store = InventoryStore(tmp_path / "inventory.db")
        await store.open()
        try:
            item_id = str(uuid.uuid4())
            await _write(store, [create(item_id, 20, threshold=threshold)], default_threshold=6)
            await _write(store, [builders.count(item_id, 6)], default_threshold=6)
            return builders.query(tmp_path / "inventory.db", "SELECT threshold FROM alerts")
        finally:
            await store.close()

    assert asyncio.run(run()) == ([(6,)] if threshold is None else [(7,)])
