"""A database written before stock alerts (schema 4) migrates in place: every level takes the
alert state it is in now (``initial_state``, by the item's threshold or the default), and no
alert is raised, so an upgrade pages nobody; the next changes are decided from those states."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from app.clock import utc_now
from app.domain.alerts import initial_state
from app.domain.events import Event
from app.listener.planner import Planner
from app.listener.schema import SCHEMA_VERSION
from app.listener.store import InventoryStore
from tests.support.events import count, query

DEFAULT = 6
# (item threshold, [(location, quantity, reserved)]): every side of each line, reserved units too.
ITEMS = {
    str(uuid.UUID(int=1)): (None, [("MAIN", 0, 0), ("S001", 6, 0), ("S002", 7, 0), ("S003", 9, 3)]),
    str(uuid.UUID(int=2)): (10, [("MAIN", 10, 0), ("S001", 11, 0), ("S002", 0, 0), ("S003", 5, 5)]),
    str(uuid.UUID(int=3)): (0, [("MAIN", 1, 0), ("S001", 0, 0)]),
}


def _schema_4(db: Path) -> None:
    """The tables the migration reads, as version 4 made them (the others are created as they are)."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE items (id TEXT PRIMARY KEY, sku TEXT NOT NULL, name TEXT NOT NULL, "
            "description TEXT NOT NULL DEFAULT '', version INTEGER NOT NULL, created_at TEXT NOT NULL, "
            "updated_at TEXT NOT NULL, deleted_at TEXT, low_stock_threshold INTEGER, "
            "quantity INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0, "
            "in_transit INTEGER NOT NULL DEFAULT 0)"
        )
        conn.execute(
            "CREATE TABLE stock_levels (item_id TEXT NOT NULL REFERENCES items (id), location TEXT NOT NULL, "
            "quantity INTEGER NOT NULL, reserved INTEGER NOT NULL, version INTEGER NOT NULL, "
            "updated_at TEXT NOT NULL, PRIMARY KEY (item_id, location), "
            "CHECK (reserved >= 0 AND reserved <= quantity)) WITHOUT ROWID"
        )
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '4')")
        for n, (item_id, (threshold, levels)) in enumerate(ITEMS.items()):
            conn.execute(
                "INSERT INTO items VALUES (?, ?, ?, '', 2, 't', 't', NULL, ?, ?, ?, 0)",
                (item_id, f"SKU-{n}", f"Item {n}", threshold, sum(q for _, q, _ in levels), sum(r for *_, r in levels)),
            )
            conn.executemany(
                "INSERT INTO stock_levels VALUES (?, ?, ?, ?, 1, 't')",
                [(item_id, location, q, r) for location, q, r in levels],
            )


async def _apply(store: InventoryStore, events: list[Event]) -> Planner:
    planner = Planner(
        await store.load(events), now=utc_now(), now_epoch=time.time(), orphan_wait=10, default_threshold=DEFAULT
    )
    for event in events:
        planner.apply(event, b"")
    await store.write(planner.plan, expected_positions={})
    return planner


async def test_a_database_of_schema_4_takes_each_levels_state_without_alerts(tmp_path: Path) -> None:
    db = tmp_path / "inventory.db"
    _schema_4(db)
    store = InventoryStore(db, low_stock_threshold=DEFAULT)
    await store.open()
    try:
        assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        states = dict(
            ((item_id, location), alert)
            for item_id, location, alert in query(db, "SELECT item_id, location, alert FROM stock_levels")
        )
        expected = {
            (item_id, location): initial_state(q - r, DEFAULT if threshold is None else threshold).value
            for item_id, (threshold, levels) in ITEMS.items()
            for location, q, r in levels
        }
        assert states == expected
        assert set(states.values()) == {"ok", "low", "out"}
        assert query(db, "SELECT COUNT(*) FROM alerts") == [(0,)]

        first, second, _ = ITEMS
        # Already out (MAIN of the first): staying out raises nothing. Low by the default (S001 at
        # 6): lower still raises nothing. OK at 7 (S002): down to 6 is low. Out at 1 of threshold
        # 10 is not past the margin; at 3 it is back in stock.
        await _apply(
            store,
            [
                count(first, 0, location="MAIN"),
                count(first, 5, location="S001"),
                count(first, 6, location="S002"),
                count(second, 1, location="S002"),
            ],
        )
        assert query(db, "SELECT item_id, location, kind FROM alerts ORDER BY id") == [(first, "S002", "low_stock")]
        await _apply(store, [count(second, 3, location="S002")])
        assert query(db, "SELECT location, kind, available, threshold FROM alerts ORDER BY id")[1:] == [
            ("S002", "back_in_stock", 3, 10)
        ]
    finally:
        await store.close()


async def test_opening_a_migrated_file_again_changes_no_state(tmp_path: Path) -> None:
    db = tmp_path / "inventory.db"
    _schema_4(db)
    for threshold in (DEFAULT, 100):  # the second open must not migrate again with another default
        store = InventoryStore(db, low_stock_threshold=threshold)
        await store.open()
        await store.close()
    assert query(
        db, "SELECT alert FROM stock_levels WHERE item_id = ? AND location = 'S002'", (str(uuid.UUID(int=1)),)
    ) == [("ok",)]
