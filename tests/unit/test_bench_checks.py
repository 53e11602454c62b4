"""The benchmark's balance check finds kept figures that disagree with the records they sum up."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.listener.schema import open_writer
from bench.checks import read_only, unbalanced_items

ROWS = (
    "INSERT INTO items (id, sku, name, version, created_at, updated_at, quantity, reserved, in_transit) "
    "VALUES ('i1', 'A', 'a', 3, 't', 't', 12, 2, 5)",
    "INSERT INTO stock_levels (item_id, location, quantity, reserved, version, updated_at) "
    "VALUES ('i1', 'MAIN', 7, 2, 2, 't'), ('i1', 'S001', 5, 0, 1, 't')",
    "INSERT INTO transfers (id, item_id, from_location, to_location, quantity, state, shipped_at) "
    "VALUES ('t1', 'i1', 'MAIN', 'S002', 5, 'in_transit', 't')",
    "INSERT INTO reservations (id, item_id, location, quantity, reserved, state, created_at) "
    "VALUES ('r1', 'i1', 'MAIN', 2, 2, 'open', 't')",
)


async def _database(path: Path) -> None:
    conn = await open_writer(str(path))
    for statement in ROWS:
        await conn.execute(statement)
    await conn.close()


async def test_a_balanced_database_counts_nothing_and_each_kind_of_drift_is_found(tmp_path: Path) -> None:
    db = tmp_path / "inventory.db"
    await _database(db)
    conn = read_only(db)
    try:
        assert unbalanced_items(conn) == 0
    finally:
        conn.close()
    for drift in (
        "UPDATE items SET quantity = 13",  # totals against the levels
        "UPDATE items SET in_transit = 4",  # units in transit against the open transfers
        "UPDATE reservations SET state = 'cancelled'",  # reserved against the open reservations
    ):
        with sqlite3.connect(db) as writer:
            writer.execute("SAVEPOINT drift")
            writer.execute(drift)
            assert unbalanced_items(writer) == 1, drift
            writer.execute("ROLLBACK TO drift")
