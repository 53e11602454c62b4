"""A node's replica writes exactly the rows the change records carry, in order, once each; and a
snapshot replaces it under readers that stay open."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from app.domain.records import (
    HistoryRow,
    ItemChange,
    ItemSummary,
    LevelView,
    OutcomeChange,
    ReservationView,
    StockAlert,
    TransferView,
    encode_text,
)
from app.jsontext import change_record
from app.reader import InventoryReader
from app.replica.store import Received, ReplicaStore, stored_payload

T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-01T00:00:01.000Z"


def summary(item_id: str, sku: str, version: int, quantity: int, reserved: int = 0) -> ItemSummary:
    return ItemSummary(
        id=item_id, sku=sku, name=f"Item {sku}", description="", quantity=quantity, reserved=reserved,
        available=quantity - reserved, version=version, created_at=T0, updated_at=T1, low_stock_threshold=None,
    )  # fmt: skip


def history(row_id: int, item_id: str, version: int, delta: int, after: int) -> HistoryRow:
    return HistoryRow(
        row_id, item_id, "stock.adjusted", "MAIN", delta, 0, after, 0, version, "alice", f"c{row_id}",
        f"e{row_id}", None, T0, T1, None, None, None,
    )  # fmt: skip


def received(seq: int, change: ItemChange | OutcomeChange) -> Received:
    return Received(seq, change, encode_text(change))


def created(seq: int, item_id: str, sku: str, quantity: int) -> Received:
    return received(
        seq,
        ItemChange(
            item_id, 1, True, False, summary(item_id, sku, 1, quantity),
            [LevelView("MAIN", quantity, 0, quantity, 1, T1)],
            history=[history(seq, item_id, 1, quantity, quantity)], level_alerts={"MAIN": "ok"},
        ),
    )  # fmt: skip


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return [tuple(row) for row in conn.execute(sql)]


async def opened(path: Path) -> ReplicaStore:
    store = ReplicaStore(path)
    await store.open()
    return store


async def test_records_become_the_rows_they_carry(tmp_path: Path) -> None:
    store = await opened(tmp_path / "replica.db")
    assert await store.watermark() is None
    reservation = ReservationView("r1", "i1", "MAIN", 2, 2, "open", "order-7", None, T1, None)
    transfer = TransferView("t1", "i1", "MAIN", "S001", 1, 0, "in_transit", T1, None, None)
    alert = StockAlert(9, "i1", "MUG", "MAIN", "low_stock", 2, 5, "c3", T1)
    moved = ItemChange(
        "i1", 2, False, False, summary("i1", "MUG", 2, 4, reserved=2), [LevelView("MAIN", 4, 2, 2, 2, T1)],
        transfers=[transfer], reservations=[reservation], alerts=[alert],
        history=[history(3, "i1", 2, -1, 4)], level_alerts={"MAIN": "low"}, reservation_seqs={"r1": 41},
    )  # fmt: skip
    outcome = OutcomeChange("c3", "i1", "stock.reserved", "MAIN", "applied", None, None, 2, T0, T1, actor="alice")
    mark = await store.apply([created(1, "i1", "MUG", 5), received(2, moved), received(3, outcome)])
    assert mark == 3
    assert await store.watermark() == 3
    path = store.path
    assert rows(path, "SELECT id, sku, version, quantity, reserved, deleted_at FROM items") == [
        ("i1", "MUG", 2, 4, 2, None)
    ]
    assert rows(path, "SELECT item_id, location, quantity, reserved, version, alert FROM stock_levels") == [
        ("i1", "MAIN", 4, 2, 2, "low")
    ]
    assert rows(path, "SELECT id, item_version, quantity_after FROM history ORDER BY id") == [(1, 1, 5), (3, 2, 4)]
    assert rows(path, "SELECT seq, id, state, reference FROM reservations") == [(41, "r1", "open", "order-7")]
    assert rows(path, "SELECT id, state, to_location FROM transfers") == [("t1", "in_transit", "S001")]
    assert rows(path, "SELECT id, kind, available FROM alerts") == [(9, "low_stock", 2)]
    assert rows(path, "SELECT command_id, status, actor FROM command_outcomes") == [("c3", "applied", "alice")]
    assert rows(path, "SELECT seq, kind, item_id FROM changes ORDER BY seq") == [
        (1, "item", "i1"), (2, "item", "i1"), (3, "outcome", "i1"),
    ]  # fmt: skip
    assert rows(path, "SELECT key, value FROM meta WHERE key IN ('replica_seq', 'published_seq') ORDER BY key") == [
        ("published_seq", "3"), ("replica_seq", "3"),
    ]  # fmt: skip
    # The readers of the query side read the replica like the listener's file.
    reader = InventoryReader(path)
    try:
        assert await reader.last_published_seq() == 3
        assert [seq for seq, _, _ in await reader.changes_after(0, 10)] == [1, 2, 3]
        item = await reader.item("i1")
        assert item is not None and item.version == 2
    finally:
        await reader.close()
    await store.close()


async def test_applying_a_record_again_changes_nothing(tmp_path: Path) -> None:
    store = await opened(tmp_path / "replica.db")
    first = created(1, "i1", "MUG", 5)
    adjusted = received(
        2,
        ItemChange(
            "i1", 2, False, False, summary("i1", "MUG", 2, 7), [LevelView("MAIN", 7, 0, 7, 2, T1)],
            history=[history(2, "i1", 2, 2, 7)],
        ),
    )  # fmt: skip
    await store.apply([first, adjusted])
    before = rows(store.path, "SELECT * FROM items") + rows(store.path, "SELECT * FROM stock_levels")
    # Both again, and the older one alone: the watermark skips them, and nothing moves back.
    assert await store.apply([first, adjusted]) == 2
    assert await store.apply([first]) == 2
    assert rows(store.path, "SELECT * FROM items") + rows(store.path, "SELECT * FROM stock_levels") == before
    assert rows(store.path, "SELECT COUNT(*) FROM history") == [(2,)]
    assert rows(store.path, "SELECT COUNT(*) FROM changes") == [(2,)]
    await store.close()


async def test_a_deleted_sku_is_taken_again_in_the_same_batch(tmp_path: Path) -> None:
    store = await opened(tmp_path / "replica.db")
    await store.apply([created(1, "old", "MUG", 1)])
    deleted = ItemChange(
        "old", 2, False, True, None, [], tombstone=summary("old", "MUG", 2, 1), deleted_at=T1,
    )  # fmt: skip
    # In sequence order the new item comes after the delete; the store writes deletes first
    # anyway, so the live-SKU index never sees two live items with one SKU.
    await store.apply([received(2, deleted), created(3, "new", "MUG", 4)])
    assert rows(store.path, "SELECT id, deleted_at FROM items ORDER BY id") == [("new", None), ("old", T1)]
    await store.close()


async def test_order_decides_the_rows(tmp_path: Path) -> None:
    # Versions rise with the sequence: the last record of a level is what stays.
    store = await opened(tmp_path / "replica.db")
    changes = [created(1, "i1", "MUG", 0)]
    for version in range(2, 12):
        changes.append(
            received(
                version,
                ItemChange(
                    "i1", version, False, False, summary("i1", "MUG", version, version),
                    [LevelView("MAIN", version, 0, version, version, T1)],
                    history=[history(version, "i1", version, 1, version)],
                ),
            )
        )  # fmt: skip
    await store.apply(changes[:4])
    await store.apply(changes[4:])
    assert rows(store.path, "SELECT quantity, version FROM stock_levels") == [(11, 11)]
    assert rows(store.path, "SELECT quantity, version FROM items") == [(11, 11)]
    assert [row[0] for row in rows(store.path, "SELECT id FROM history ORDER BY id")] == list(range(1, 12))
    await store.close()


async def test_a_snapshot_replaces_the_replica_under_open_readers(tmp_path: Path) -> None:
    # The "listener's" file: made here by a store, then the tables a snapshot empties filled in.
    source = await opened(tmp_path / "source.db")
    await source.apply([created(n, f"i{n}", f"SKU-{n}", n) for n in range(1, 51)])
    await source.close()
    with sqlite3.connect(tmp_path / "source.db") as conn:
        conn.execute("INSERT INTO processed_events (event_id, applied_at) VALUES ('e', 1)")
    replica = await opened(tmp_path / "replica.db")
    await replica.apply([created(1, "stale", "STALE", 1), created(2, "i2", "SKU-2", 2)])
    reader = InventoryReader(replica.path)
    try:
        assert sorted(r[0] for r in await reader.rows("SELECT id FROM items")) == ["i2", "stale"]
        # What it changes: every item but the one the replica already had as the snapshot has it.
        moved = await replica.install(tmp_path / "source.db", 50, changed=True)
        assert sorted(moved) == sorted((f"i{n}", 1) for n in range(1, 51) if n != 2)
        # The same reader connections see the new content.
        assert len(await reader.rows("SELECT id FROM items")) == 50
        assert await reader.item("stale") is None
        assert await reader.last_published_seq() == 50
    finally:
        await reader.close()
    assert await replica.watermark() == 50
    assert rows(replica.path, "SELECT COUNT(*) FROM processed_events") == [(0,)]
    # It goes on from there.
    assert await replica.apply([created(51, "i51", "SKU-51", 1)]) == 51
    assert rows(replica.path, "SELECT COUNT(*) FROM items") == [(51,)]
    await replica.close()


def test_the_stored_text_of_a_published_record() -> None:
    change = ItemChange("i1", 1, True, False, summary("i1", "MUG", 1, 1), [])
    payload = encode_text(change)
    assert stored_payload(change_record(42, payload)) == payload
