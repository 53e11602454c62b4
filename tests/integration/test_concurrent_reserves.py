"""200 clients reserve one unit each of an item with 50: never oversold."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import running_app
from tests.support.app import base_env, item_body, kafka_env, login
from tests.support.events import query

ITEMS = "/api/v1/inventory/items"


@pytest.mark.parametrize("log_kind", ["embedded", "kafka"])
async def test_200_concurrent_reserves_of_one_on_50_available(
    log_kind: str, data_dir: Path, request: pytest.FixtureRequest
) -> None:
    extra = kafka_env(request.getfixturevalue("kafka_bootstrap")) if log_kind == "kafka" else {}
    async with running_app(base_env(data_dir, **extra)) as (client, _):
        headers = await login(client, "clerk")
        manager = await login(client, "manager")
        created = await client.post(ITEMS, json=item_body(quantity=50), headers={**manager, "Prefer": "wait=20"})
        item_id = created.json()["id"]
        wait = {**headers, "Prefer": "wait=30"}
        responses = await asyncio.gather(
            *(client.post(f"{ITEMS}/{item_id}/reserve", json={"quantity": 1}, headers=wait) for _ in range(200))
        )
        stock = (await client.get(f"{ITEMS}/{item_id}/stock", headers=headers)).json()

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 50, 409: 150}
    reasons = Counter(r.json()["details"]["reason"] for r in responses if r.status_code == 409)
    assert reasons == {"insufficient_stock": 150}
    assert (stock["quantity"], stock["reserved"], stock["available"]) == (50, 50, 0)
    db = data_dir / "inventory.db"
    # Every intermediate state the listener committed, in order: reserved never above quantity.
    history = query(db, "SELECT quantity_after, reserved_after FROM history WHERE item_id = ? ORDER BY id", (item_id,))
    assert len(history) == 51
    assert all(0 <= reserved <= quantity for quantity, reserved in history)
    assert [reserved for _, reserved in history] == list(range(51))
