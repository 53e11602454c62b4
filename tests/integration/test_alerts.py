"""Low-stock alerts end to end through the real split stack (Kafka, Redis, SQLite): commands move a
level across its lines, the listener decides each alert once, the query service lists them
newest first (filtered by location and kind, paged by id), the API stream carries them inside
the item event, and the listener's /metrics counts them by kind."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.processes import run_cli
from tests.support.services import RedisServer
from tests.support.stack import Stack, split_stack

ITEMS = "/api/v1/inventory/items"
ALERTS = "/api/v1/inventory/alerts"
WAIT = {"Prefer": "wait=20"}


class AlertsApi:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(timeout=60)
        self.manager = stack.token("manager")
        self.viewer = stack.token("viewer")

    def create(self, sku: str, quantity: int, threshold: int | None = None) -> str:
        body: dict[str, Any] = {"sku": sku, "name": f"{sku} name", "quantity": quantity}
        if threshold is not None:
            body["low_stock_threshold"] = threshold
        return str(self.stack.create_item(self.manager, **body)["id"])

    def count(self, item_id: str, counted: int, location: str = "MAIN") -> None:
        response = self.client.post(
            f"{self.stack.command.url}{ITEMS}/{item_id}/count",
            json={"counted": counted, "location": location},
            headers={**self.manager, **WAIT},
        )
        assert response.status_code == 200, response.text

    def alerts(self, expect: int = 200, **params: Any) -> dict[str, Any]:
        response = self.client.get(f"{self.stack.query.url}{ALERTS}", params=params, headers=self.viewer)
        assert response.status_code == expect, response.text
        return dict(response.json())

    def metric(self, kind: str) -> float:
        text = self.client.get(f"{self.stack.listener.url}/metrics").text
        found = re.search(rf'^inventory_stock_alerts_total{{kind="{kind}"}} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def chain(
    kafka_bootstrap: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AlertsApi]:
    root = tmp_path_factory.mktemp("alerts")
    (root / "data").mkdir()
    # The default threshold is 5 (INVENTORY_LOW_STOCK_THRESHOLD).
    with split_stack(kafka_bootstrap, redis_server.url, root / "data", root) as stack:
        api = AlertsApi(stack)
        try:
            yield api
        finally:
            api.client.close()


def test_crossings_alert_once_each_and_are_listed_and_counted(chain: AlertsApi) -> None:
    item_id = chain.create("AL-SOCKS", 20, threshold=10)
    for counted in (9, 0, 1, 0, 1, 2, 14):  # low, out, (bouncing: nothing), back in stock at 14
        chain.count(item_id, counted)
    other = chain.create("AL-CAPS", 8)  # default threshold 5
    chain.count(other, 4, location="S001")  # a new level: it starts low, without an alert
    chain.count(other, 0, location="S001")

    found = chain.alerts(location="MAIN")["alerts"]
    assert [(a["sku"], a["kind"], a["available"], a["threshold"]) for a in found] == [
        ("AL-SOCKS", "back_in_stock", 14, 10),
        ("AL-SOCKS", "out_of_stock", 0, 10),
        ("AL-SOCKS", "low_stock", 9, 10),
    ]
    assert all(a["name"] == "AL-SOCKS name" and a["item_id"] == item_id and a["location"] == "MAIN" for a in found)
    assert [a["id"] for a in found] == sorted((a["id"] for a in found), reverse=True)

    at_s001 = chain.alerts(location="S001")["alerts"]
    assert [(a["sku"], a["kind"], a["threshold"]) for a in at_s001] == [("AL-CAPS", "out_of_stock", 5)]
    both = chain.alerts(location="S001,MAIN", kind="out_of_stock")["alerts"]
    assert [(a["sku"], a["location"]) for a in both] == [("AL-CAPS", "S001"), ("AL-SOCKS", "MAIN")]
    assert [a["sku"] for a in chain.alerts()["alerts"]] == ["AL-CAPS", "AL-SOCKS", "AL-SOCKS", "AL-SOCKS"]
    assert chain.alerts(location="S002") == {"alerts": [], "next_before": None}
    assert chain.alerts(before=0) == {"alerts": [], "next_before": None}  # clamped: nothing is older

    # Keyset pages: newest first, next_before until the last page.
    first = chain.alerts(limit=3)
    assert len(first["alerts"]) == 3 and first["next_before"] == first["alerts"][-1]["id"]
    rest = chain.alerts(limit=3, before=first["next_before"])
    assert [a["kind"] for a in rest["alerts"]] == ["low_stock"] and rest["next_before"] is None

    assert chain.metric("low_stock") == 1
    assert chain.metric("out_of_stock") == 2
    assert chain.metric("back_in_stock") == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"location": "NOWHERE"}, "location"),
        ({"kind": "panic"}, "kind"),
        ({"before": "x"}, "before"),
    ],
)
def test_bad_filters_are_a_400_naming_the_field(chain: AlertsApi, params: dict[str, str], field: str) -> None:
    body = chain.alerts(expect=400, **params)
    assert field in json.dumps(body)


def test_the_api_stream_carries_the_alerts_inside_the_item_event(chain: AlertsApi) -> None:
    item_id = chain.create("AL-STREAM", 3, threshold=2)
    url = f"{chain.stack.query.url}/api/v1/inventory/stream?location=S002"
    carried: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    timeout = httpx.Timeout(10, read=30)
    with httpx.Client(timeout=timeout) as client, client.stream("GET", url, headers=chain.viewer) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        while next(lines) != ": connected":
            assert time.monotonic() < deadline
        # Sent while the stream is open: its events wait in the connection until read below.
        chain.count(item_id, 5, location="S002")  # a new level: no alert
        chain.count(item_id, 0, location="S002")
        for line in lines:
            assert time.monotonic() < deadline, "no alert on the stream"
            payload = line[5:].strip() if line.startswith("data:") else ""
            if payload.startswith("{"):  # the greeting's lines carry none
                data = json.loads(payload)
                if data.get("item_id") == item_id and data.get("alerts"):
                    carried = data["alerts"]
                    break
    (alert,) = carried
    assert (alert["kind"], alert["location"], alert["available"], alert["sku"]) == (
        "out_of_stock",
        "S002",
        0,
        "AL-STREAM",
    )
    listed = chain.alerts(location="S002")["alerts"][0]
    assert listed["id"] == alert["id"]


def test_a_rebuild_decides_the_same_alert_states(chain: AlertsApi) -> None:
    """Runs last in this module: it stops the listener. The replay decides every level's state
    again, change by change; a state damaged behind the listener's back is a difference."""
    item_id = chain.create("AL-REBUILD", 12, threshold=4)
    for counted in (3, 0, 2, 9, 1):
        chain.count(item_id, counted)
    stack = chain.stack
    stack.listener.stop()
    try:
        assert "equals the current state" in run_cli(stack.env, "rebuild").stdout
        db = stack.data_dir / "inventory.db"
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE stock_levels SET alert = 'ok' WHERE item_id = ?", (item_id,))
        with pytest.raises(RuntimeError, match="differs") as differs:
            run_cli(stack.env, "rebuild")
        assert "'low'" in str(differs.value) and "'ok'" in str(differs.value)
    finally:
        stack.listener.start()
