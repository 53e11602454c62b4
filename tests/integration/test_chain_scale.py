"""A chain of 200 stores on the embedded app: 500 items stocked across them (about 100,000
levels), loaded as ``inventory demo`` loads them (``app/ops/demo.py``, through the embedded log).

What must not grow with the number of stores: a reserve's change record, GET stock of one
location, a store's list page. And the item's chain totals stay the sum of its levels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from app.domain.records import decode_change, encode_text, for_screens
from app.eventlog.embedded import EmbeddedEventLog
from app.ops.demo import load_demo
from tests.conftest import running_app
from tests.support.app import base_env, login, settings_for
from tests.support.events import query
from tests.support.waiting import eventually

ITEMS = "/api/v1/inventory/items"
STORES = 200
ITEM_COUNT = 500
CHANGE_LIMIT = 1024

pytestmark = pytest.mark.slow


def chain(stores: int) -> str:
    return ",".join(["MAIN", *(f"S{n:03d}" for n in range(1, stores + 1))])


async def test_a_chain_of_200_stores_costs_per_location_not_per_chain(data_dir: Path) -> None:
    env = base_env(data_dir, INVENTORY_LOCATIONS=chain(STORES), INVENTORY_ORPHAN_WAIT="120")
    db = data_dir / "inventory.db"
    settings = settings_for(env)
    # Written before the app starts: the embedded log has one writer, and the app's runs on the
    # loop of its own lifespan.
    event_log = EmbeddedEventLog(settings.event_log_db)
    await event_log.start()
    try:
        plan = await load_demo(event_log, settings.locations, items=ITEM_COUNT)
    finally:
        await event_log.stop()
    async with running_app(env) as (client, _):
        events = len(plan.events)

        async def applied() -> bool:
            return bool(query(db, "SELECT COUNT(*) FROM command_outcomes")[0][0] >= events)

        started = time.monotonic()
        await eventually(applied, timeout=150, interval=0.5)
        apply_seconds = time.monotonic() - started
        levels = query(db, "SELECT COUNT(*) FROM stock_levels")[0][0]
        assert levels > 0.95 * STORES * ITEM_COUNT, levels
        assert query(db, "SELECT COUNT(*) FROM command_outcomes WHERE status != 'applied'") == [(0,)]

        # An item stocked at S001 (the demo skips a few levels), and a reserve there.
        ((item_id, before_qty, before_res),) = query(
            db,
            "SELECT item_id, quantity, reserved FROM stock_levels WHERE location = 'S001' AND quantity >= 6 "
            "ORDER BY item_id LIMIT 1",
        )
        clerk = await login(client, "clerk")
        response = await client.post(
            f"{ITEMS}/{item_id}/reserve", json={"quantity": 1, "location": "S001"}, headers=clerk
        )
        assert response.status_code == 202, response.text
        command_id = response.json()["command_id"]

        async def reserve_applied() -> list[tuple[object, ...]]:
            return query(db, "SELECT status FROM command_outcomes WHERE command_id = ?", (command_id,))

        assert await eventually(reserve_applied, timeout=30) == [("applied",)]
        ((payload,),) = query(
            db, "SELECT payload FROM changes WHERE kind = 'item' AND item_id = ? ORDER BY seq DESC LIMIT 1", (item_id,)
        )
        # What a screen gets of it; the stored record also carries rows for replicas (one history
        # row and a few numbers: docs/scaling.md).
        screened = encode_text(for_screens(decode_change(payload.encode())))
        record = json.loads(screened)
        assert len(screened.encode()) < CHANGE_LIMIT, f"{len(screened.encode())} bytes"
        assert len(payload.encode()) < 2 * CHANGE_LIMIT, f"{len(payload.encode())} bytes stored"
        assert [level["location"] for level in record["levels"]] == ["S001"]

        viewer = await login(client, "viewer")

        # The outcome was read from SQLite directly: the cache catches up a moment later.
        async def stock_at_s001() -> tuple[object, ...]:
            stock = await client.get(f"{ITEMS}/{item_id}/stock", params={"location": "S001"}, headers=viewer)
            assert stock.status_code == 200, stock.text
            (level,) = stock.json()["locations"]
            found = (level["location"], level["quantity"], level["reserved"])
            return found if found == ("S001", before_qty, before_res + 1) else ()

        assert await eventually(stock_at_s001, timeout=10) == ("S001", before_qty, before_res + 1)

        page = await client.get(ITEMS, params={"page": 3, "page_size": 25, "location": "S001"}, headers=viewer)
        assert page.status_code == 200, page.text
        listed = page.json()["items"]
        assert len(listed) == 25
        at_s001 = dict(
            (
                (i, (q, r))
                for i, q, r in query(db, "SELECT item_id, quantity, reserved FROM stock_levels WHERE location = 'S001'")
            )
        )
        for entry in listed:
            assert [lv["location"] for lv in entry["locations"]] == ["S001"]
            assert (entry["quantity"], entry["reserved"]) == at_s001[entry["id"]]

        # The chain totals on the item row are the sum of its levels, for every item.
        mismatched = query(
            db,
            "SELECT i.id FROM items i JOIN (SELECT item_id, SUM(quantity) AS q, SUM(reserved) AS r "
            "FROM stock_levels GROUP BY item_id) s ON s.item_id = i.id WHERE i.quantity != s.q OR i.reserved != s.r",
        )
        assert mismatched == []
        totals = await client.get(f"{ITEMS}/{item_id}/stock", headers=viewer)
        body = totals.json()
        assert (body["quantity"], body["reserved"]) == tuple(
            query(db, "SELECT SUM(quantity), SUM(reserved) FROM stock_levels WHERE item_id = ?", (item_id,))[0]
        )
        print(f"{events} demo events, {levels} levels applied in {apply_seconds:.1f} s")
