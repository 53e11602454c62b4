"""Webhooks delivered by real processes: the delivering process killed with deliveries in flight,
and the listener role of the split deployment (Kafka) delivering."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import PASSWORD, base_env, item_body
from tests.support.processes import ServiceProcess, run_cli
from tests.support.stack import split_stack
from tests.support.waiting import wait_until
from tests.support.webhooks import SECRET, receiver

ITEMS = "/api/v1/inventory/items"
HOOKS = "/api/v1/webhooks"


def token(url: str) -> dict[str, str]:
    response = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def register(url: str, headers: dict[str, str], hook_url: str, events: list[str]) -> dict[str, Any]:
    response = httpx.post(f"{url}{HOOKS}", json={"url": hook_url, "events": events, "secret": SECRET}, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored_deliveries(data_dir: Path) -> dict[str, str]:
    """Delivery id → state, as webhooks.db holds them."""
    with sqlite3.connect(data_dir / "webhooks.db") as conn:
        return dict(conn.execute("SELECT id, state FROM deliveries").fetchall())


@pytest.mark.slow
def test_killed_with_deliveries_in_flight_each_is_delivered_after_restart_with_the_same_id(
    data_dir: Path, tmp_path: Path
) -> None:
    env = base_env(
        data_dir,
        INVENTORY_WEBHOOKS_ALLOW_PRIVATE="1",
        INVENTORY_WEBHOOKS_RETRY_BASE="0.05",
        INVENTORY_WEBHOOKS_RETRY_MAX="0.2",
    )
    run_cli(env, "users", "add", "admin", "--role", "admin", "--password", PASSWORD)
    process = ServiceProcess("all", env, tmp_path / "all.log").start()
    try:
        # Each request takes a while at the receiver: the kill finds some of them in flight.
        with receiver(delay=1.0) as slow:
            headers = token(process.url)
            register(process.url, headers, slow.url, ["item.created"])
            for _ in range(30):
                response = httpx.post(f"{process.url}{ITEMS}", json=item_body(), headers=headers, timeout=30)
                assert response.status_code in (201, 202), response.text

            wait_until(lambda: slow.receiver.in_progress >= 1 and len(slow.events()) >= 3, timeout=60, interval=0.01)
            in_flight_at_kill = stored_deliveries(data_dir)
            process.kill()
            pending_at_kill = {d for d, state in in_flight_at_kill.items() if state == "pending"}
            assert pending_at_kill  # the kill came with deliveries still to make

            process.start()
            wait_until(lambda: len(stored_deliveries(data_dir)) == 30, timeout=60)
            wait_until(lambda: set(stored_deliveries(data_dir).values()) == {"delivered"}, timeout=90)
            wait_until(lambda: slow.receiver.in_progress == 0, timeout=30)

            stored = stored_deliveries(data_dir)
            seen = slow.receiver.seen()
            # Each delivered at least once, none lost, none invented.
            assert seen == set(stored)
            assert len(slow.events()) == 30
            # The requests the kill interrupted (answered by the receiver after the sender died)
            # came again after the restart with the same delivery id: the receiver dropped them.
            assert slow.receiver.duplicates >= 1
            assert set(slow.receiver.arrivals) == set(stored)
            assert slow.receiver.rejected == 0
    finally:
        process.stop()


@pytest.mark.kafka
def test_the_listener_role_of_the_split_deployment_delivers(
    kafka_bootstrap: str, data_dir: Path, tmp_path: Path
) -> None:
    with (
        receiver() as hook,
        split_stack(kafka_bootstrap, None, data_dir, tmp_path, INVENTORY_WEBHOOKS_ALLOW_PRIVATE="1") as stack,
    ):
        headers = stack.token()
        # Registered through the command service; the listener process delivers.
        registered = register(stack.command.url, headers, hook.url, ["item.created", "stock.changed"])
        listed = httpx.get(f"{stack.query.url}{HOOKS}", headers=headers).json()
        assert [h["id"] for h in listed] == [registered["id"]]
        item = stack.create_item(headers, **item_body(quantity=4))
        response = httpx.post(
            f"{stack.command.url}{ITEMS}/{item['id']}/adjust",
            json={"quantity": 3},
            headers={**headers, "Prefer": "wait=20"},
            timeout=30,
        )
        assert response.status_code in (200, 201), response.text
        wait_until(lambda: len(hook.events()) >= 2, timeout=60)
        events = hook.events()
        assert [e["type"] for e in events] == ["item.created", "stock.changed"]
        assert events[1]["data"]["quantity"] == 7
        assert hook.receiver.rejected == 0
        # Only the listener delivers: the command and query processes have no dispatcher.
        metrics = httpx.get(f"{stack.listener.url}/metrics").text
        assert 'inventory_webhook_deliveries_total{result="delivered"} 2.0' in metrics
