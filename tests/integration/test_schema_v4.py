"""A database written before a store's day (schema 3) migrates in place: units in transit on the
item, reasons in the history, and the reserved units carried over as plain reservations that a
plain release gives back as before."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from app.clock import utc_now
from app.listener.planner import Planner
from app.listener.schema import SCHEMA_VERSION
from app.listener.store import InventoryStore
from tests.support.events import query, release

ITEM = str(uuid.UUID(int=1))


def _schema_3(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE items (id TEXT PRIMARY KEY, sku TEXT NOT NULL, name TEXT NOT NULL, "
            "description TEXT NOT NULL DEFAULT '', version INTEGER NOT NULL, created_at TEXT NOT NULL, "
            "updated_at TEXT NOT NULL, deleted_at TEXT, low_stock_threshold INTEGER, "
            "quantity INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0)"
        )
        conn.execute(
            "CREATE TABLE stock_levels (item_id TEXT NOT NULL, location TEXT NOT NULL, quantity INTEGER NOT NULL, "
            "reserved INTEGER NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL, "
            "PRIMARY KEY (item_id, location)) WITHOUT ROWID"
        )
        conn.execute(
            "CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, "
            "event_type TEXT NOT NULL, location TEXT, quantity_delta INTEGER NOT NULL DEFAULT 0, "
            "reserved_delta INTEGER NOT NULL DEFAULT 0, quantity_after INTEGER, reserved_after INTEGER, "
            "item_version INTEGER NOT NULL, actor TEXT NOT NULL, command_id TEXT NOT NULL, event_id TEXT NOT NULL, "
            "note TEXT, occurred_at TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '3')")
        conn.execute("INSERT INTO items VALUES (?, 'A', 'a', '', 3, 't', 't', NULL, NULL, 15, 3)", (ITEM,))
        conn.executemany(
            "INSERT INTO stock_levels VALUES (?, ?, ?, ?, 1, 't')",
            [(ITEM, "MAIN", 10, 2), (ITEM, "S001", 5, 1), (ITEM, "S002", 0, 0)],
        )
        conn.execute(
            "INSERT INTO history (item_id, event_type, location, item_version, actor, command_id, event_id, note, "
            "occurred_at, applied_at) VALUES (?, 'inventory.stock.adjusted', 'MAIN', 2, 'a', 'c', 'e', 'delivery', "
            "'t', 't')",
            (ITEM,),
        )


async def test_a_database_of_schema_3_carries_its_reservations_over(tmp_path: Path) -> None:
    db = tmp_path / "inventory.db"
    _schema_3(db)
    store = InventoryStore(db)
    await store.open()
    try:
        carried = query(db, "SELECT location, quantity, reserved, state, reference FROM reservations ORDER BY location")
        assert carried == [("MAIN", 2, 2, "open", None), ("S001", 1, 1, "open", None)]
        assert query(db, "SELECT in_transit FROM items") == [(0,)]
        assert query(db, "SELECT note, reason, reference, expected FROM history") == [("delivery", None, None, None)]
        assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]

        # A plain release gives the carried-over units back, as it did before the migration.
        event = release(ITEM, 2, location="MAIN")
        planner = Planner(await store.load([event]), now=utc_now(), now_epoch=time.time(), orphan_wait=10)
        planner.apply(event, b"")
        assert [o.status for o in planner.plan.outcomes] == ["applied"]
        await store.write(planner.plan, expected_positions={})
    finally:
        await store.close()
    assert query(db, "SELECT quantity, reserved FROM stock_levels WHERE location = 'MAIN'") == [(10, 0)]
    assert query(db, "SELECT state, quantity FROM reservations WHERE location = 'MAIN'") == [("released", 0)]
    assert query(db, "SELECT quantity, reserved FROM items") == [(15, 1)]
