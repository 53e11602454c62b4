"""Search by several words on a real database written by the listener's store: the trigram index
kept by triggers, filled once for a file from before it, and read by InventoryReader.list_items."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from app.clock import utc_now
from app.domain.catalogue import ItemCreatedData
from app.domain.catalogue.items import ItemDeletedData, ItemUpdatedData
from app.domain.events import Event, EventType
from app.listener.planner import Planner
from app.listener.store import InventoryStore
from app.reader import InventoryReader
from tests.support.events import adjust, event, query


def _create(sku: str, name: str, quantity: int = 5) -> Event:
    item_id = str(uuid.uuid4())
    return event(EventType.ITEM_CREATED, item_id, ItemCreatedData(sku=sku, name=name, quantity=quantity))


async def _apply(store: InventoryStore, *events: Event) -> None:
    for one in events:
        planner = Planner(await store.load([one]), now=utc_now(), now_epoch=time.time(), orphan_wait=10)
        planner.apply(one, b"")
        assert [o.status for o in planner.plan.outcomes] == ["applied"], planner.plan.outcomes
        await store.write(planner.plan, expected_positions={})


async def _skus(db: Path, q: str, location: str | None = None) -> list[str]:
    reader = InventoryReader(db)
    try:
        page = await reader.list_items(page=1, page_size=50, q=q, location=location, sort="sku")
        assert page.total == len(page.items)
        return [item.sku for item in page.items]
    finally:
        await reader.close()


async def test_every_word_is_found_in_the_sku_or_the_name(tmp_path: Path) -> None:
    db = tmp_path / "inventory.db"
    store = InventoryStore(db)
    await store.open()
    tote, mug, blue = _create("TOTE-01", "Green bag"), _create("MUG-7", "Green mug"), _create("TOTE-02", "Blue bag")
    try:
        await _apply(store, tote, mug, blue)
        assert await _skus(db, "green tote") == ["TOTE-01"]
        assert await _skus(db, "TOTE green") == ["TOTE-01"]  # any order, any case
        assert await _skus(db, "ree") == ["MUG-7", "TOTE-01"]  # part of a word
        assert await _skus(db, "bag 01") == ["TOTE-01"]  # a short word, by the fallback
        assert await _skus(db, "g") == ["MUG-7", "TOTE-01", "TOTE-02"]
        assert await _skus(db, "green tote", location="MAIN") == ["TOTE-01"]  # a store's list too
        assert await _skus(db, 'green" OR "blue') == []  # syntax is text, not operators

        # A rename moves the item in the index; a stock change leaves it where it is.
        rename = event(EventType.ITEM_UPDATED, blue.item_id, ItemUpdatedData(name="Green tote, large"))
        await _apply(store, rename, adjust(tote.item_id, 3))
        assert await _skus(db, "green tote") == ["TOTE-01", "TOTE-02"]
        assert await _skus(db, "blue") == []

        # A deleted item is not found (its row stays, so does its index entry; the list skips it).
        await _apply(store, event(EventType.ITEM_DELETED, mug.item_id, ItemDeletedData()))
        assert await _skus(db, "mug") == []
    finally:
        await store.close()
    assert query(db, "SELECT COUNT(*) FROM items_search WHERE items_search MATCH '\"green\"'") == [(3,)]


async def test_a_file_from_before_the_index_gets_it_filled_on_open(tmp_path: Path) -> None:
    db = tmp_path / "inventory.db"
    store = InventoryStore(db)
    await store.open()
    try:
        await _apply(store, _create("TOTE-01", "Green bag"), _create("MUG-7", "Green mug"))
    finally:
        await store.close()
    # The file as the version before the index left it: no index, no triggers, no mark.
    with sqlite3.connect(db) as conn:
        for trigger in ("items_search_insert", "items_search_delete", "items_search_update"):
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("DROP TABLE items_search")
        conn.execute("DELETE FROM meta WHERE key = 'items_search_filled'")

    store = InventoryStore(db)
    await store.open()
    try:
        assert await _skus(db, "green tote") == ["TOTE-01"]
        await _apply(store, _create("TOTE-02", "Green tote"))  # and kept from then on
        assert await _skus(db, "green tote") == ["TOTE-01", "TOTE-02"]
    finally:
        await store.close()
    # Filled once: opening again does not rebuild it (the mark stays, the entries are not doubled).
    store = InventoryStore(db)
    await store.open()
    await store.close()
    assert query(db, "SELECT value FROM meta WHERE key = 'items_search_filled'") == [("1",)]
    assert await _skus(db, "green") == ["MUG-7", "TOTE-01", "TOTE-02"]
