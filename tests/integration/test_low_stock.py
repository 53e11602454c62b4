"""Low stock across the chain through the real split stack: levels that are low or out at any
store, most urgent first (out of stock, then by how far below the threshold), each with the other
store that has the most available; filtered by store and paged.

The stack has its own data: what the module creates is all there is, so the order is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.domain.model import MAX_COMMAND_QUANTITY
from tests.support.services import RedisServer
from tests.support.stack import Stack, split_stack

ITEMS = "/api/v1/inventory/items"
WAIT = {"Prefer": "wait=20"}
LOW_STOCK = "/api/v1/inventory/low-stock"


class LowStockApi:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(timeout=60)
        self.manager = stack.token("manager")
        self.viewer = stack.token("viewer")

    def create(self, sku: str, levels: dict[str, int], threshold: int | None = None) -> str:
        body: dict[str, Any] = {"sku": sku, "name": f"{sku} name", "quantity": levels.pop("MAIN", 0)}
        if threshold is not None:
            body["low_stock_threshold"] = threshold
        item_id = str(self.stack.create_item(self.manager, **body)["id"])
        for location, quantity in levels.items():
            self.adjust(item_id, quantity, location)
        return item_id

    def adjust(self, item_id: str, quantity: int, location: str) -> None:
        response = self.client.post(
            f"{self.stack.command.url}{ITEMS}/{item_id}/adjust",
            json={"quantity": quantity, "location": location, "reason": "received" if quantity > 0 else "sold"},
            headers={**self.manager, **WAIT},
        )
        assert response.status_code == 200, response.text

    def low(self, **params: Any) -> dict[str, Any]:
        response = self.client.get(f"{self.stack.query.url}{LOW_STOCK}", params=params, headers=self.viewer)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def chain(
    kafka_bootstrap: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LowStockApi]:
    root = tmp_path_factory.mktemp("low-stock")
    (root / "data").mkdir()
    # The default threshold is 5 (INVENTORY_LOW_STOCK_THRESHOLD).
    with split_stack(kafka_bootstrap, redis_server.url, root / "data", root) as stack:
        api = LowStockApi(stack)
        try:
            yield api
        finally:
            api.client.close()


def test_low_and_out_levels_across_the_chain_most_urgent_first_with_the_best_source(chain: LowStockApi) -> None:
    # (sku, levels, threshold): the default threshold is 5.
    chain.create("LS-PLENTY", {"MAIN": 50, "S001": 40, "S002": 30})  # nothing low
    chain.create("LS-OUT-T10", {"MAIN": 30, "S001": 2, "S002": 1}, threshold=10)
    out_default = chain.create("LS-OUT-T5", {"MAIN": 6, "S001": 9})  # 0 at S002 after the next line
    chain.adjust(out_default, 3, "S002")
    chain.adjust(out_default, -3, "S002")
    chain.create("LS-LOW-2", {"MAIN": 100, "S002": 2})
    chain.create("LS-LOW-4", {"MAIN": 4, "S001": 20})
    chain.create("LS-ONLY", {"S001": 1})  # created with 0 at MAIN: no other store has any to give S001

    found = chain.low(page_size=100)
    rows = [
        (r["sku"], r["location"], r["available"], r["state"], r["best_location"], r["best_available"])
        for r in found["levels"]
    ]
    assert rows == [
        # Out of stock first, the highest threshold first (the furthest below it), then by SKU.
        ("LS-ONLY", "MAIN", 0, "out", "S001", 1),
        ("LS-OUT-T5", "S002", 0, "out", "S001", 9),
        # Then low, by how far below the threshold: 1 - 10, 2 - 10, then 1 - 5, 2 - 5, 4 - 5.
        ("LS-OUT-T10", "S002", 1, "low", "MAIN", 30),
        ("LS-OUT-T10", "S001", 2, "low", "MAIN", 30),
        ("LS-ONLY", "S001", 1, "low", None, None),
        ("LS-LOW-2", "S002", 2, "low", "MAIN", 100),
        ("LS-LOW-4", "MAIN", 4, "low", "S001", 20),
    ], rows
    assert found["total"] == len(rows) and found["total_pages"] == 1
    assert {r["threshold"] for r in found["levels"] if r["sku"] == "LS-OUT-T10"} == {10}

    # One store, and pages: the same order, cut.
    at_s002 = chain.low(location="s002")
    assert [(r["sku"], r["available"]) for r in at_s002["levels"]] == [
        ("LS-OUT-T5", 0), ("LS-OUT-T10", 1), ("LS-LOW-2", 2),
    ]  # fmt: skip
    second = chain.low(page=2, page_size=3)
    assert [(r["sku"], r["location"]) for r in second["levels"]] == [(sku, loc) for sku, loc, *_ in rows[3:6]]
    assert second["total_pages"] == 3


def test_a_recovered_level_leaves_the_list(chain: LowStockApi) -> None:
    item = chain.create("LS-RECOVER", {"MAIN": 3})
    assert ("LS-RECOVER", "MAIN") in {(r["sku"], r["location"]) for r in chain.low(page_size=100)["levels"]}
    chain.adjust(item, 10, "MAIN")
    assert ("LS-RECOVER", "MAIN") not in {(r["sku"], r["location"]) for r in chain.low(page_size=100)["levels"]}


def test_an_unknown_store_is_a_400(chain: LowStockApi) -> None:
    response = chain.client.get(
        f"{chain.stack.query.url}{LOW_STOCK}", params={"location": "NOWHERE"}, headers=chain.viewer
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "location"


def test_an_item_with_the_highest_threshold_is_listed_in_order_without_walking_every_rank(chain: LowStockApi) -> None:
    # Ranks run from 1 - threshold to 0: with the largest threshold the read sorts instead of
    # walking a billion ranks one query at a time (which would not answer within the timeout).
    chain.create("LS-HUGE-T", {"MAIN": 7}, threshold=MAX_COMMAND_QUANTITY)
    levels = [(r["sku"], r["location"], r["state"]) for r in chain.low(page_size=100)["levels"]]
    assert ("LS-HUGE-T", "MAIN", "low") in levels
    # 7 - 1,000,000,000 is further below its threshold than any other low level: first of the lows.
    first_low = next(level for level in levels if level[2] == "low")
    assert first_low == ("LS-HUGE-T", "MAIN", "low")
    second = chain.low(page=2, page_size=1)["levels"]
    assert len(second) == 1
