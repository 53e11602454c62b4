"""The command service against a Kafka broker that goes away and comes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import running_app
from tests.support.app import base_env, item_body, kafka_env, login
from tests.support.services import KafkaBroker, free_port_pair
from tests.support.waiting import eventually

ITEMS = "/api/v1/inventory/items"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test's own: stopping it must not disturb the other tests."""
    broker = KafkaBroker(free_port_pair(), tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.kafka
async def test_kafka_down_means_503_and_nothing_applied_then_recovery(own_broker: KafkaBroker, data_dir: Path) -> None:
    env = base_env(data_dir, **kafka_env(own_broker.bootstrap, INVENTORY_PUBLISH_TIMEOUT="2"))
    async with running_app(env) as (client, _):
        admin = await login(client, "admin")
        wait = {**admin, "Prefer": "wait=20"}
        created = await client.post(ITEMS, json=item_body(sku="DOWN-1", quantity=5), headers=wait)
        assert created.status_code == 201
        item_id = created.json()["id"]

        own_broker.stop()
        refused = await client.post(f"{ITEMS}/{item_id}/reserve", json={"quantity": 2}, headers=admin)
        assert refused.status_code == 503
        assert refused.json()["error"] == "ServiceUnavailable"
        assert int(refused.headers["Retry-After"]) > 0
        ready = await client.get("/api/v1/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["kafka"]["status"] == "down"

        own_broker.start()

        async def accepted() -> bool:
            # A client retrying after 5xx uses an Idempotency-Key: a retry whose first attempt did
            # reach the broker (ack lost) is then not applied twice.
            retry = {**wait, "Idempotency-Key": "reserve-after-outage"}
            response = await client.post(f"{ITEMS}/{item_id}/reserve", json={"quantity": 1}, headers=retry)
            return response.status_code == 200

        await eventually(accepted, timeout=90, interval=1.0)
        stock = (await client.get(f"{ITEMS}/{item_id}/stock", headers=admin)).json()
        # The refused reserve of 2 was never applied; only the one accepted after recovery.
        assert stock["reserved"] == 1


@pytest.mark.kafka
async def test_an_idempotency_key_survives_a_restart_of_the_command_service(
    kafka_bootstrap: str, data_dir: Path
) -> None:
    env = base_env(data_dir, **kafka_env(kafka_bootstrap))
    body = item_body(sku="RESTART-1", quantity=3)
    async with running_app(env) as (client, _):
        headers = {**await login(client, "admin"), "Idempotency-Key": "restart-key-1", "Prefer": "wait=20"}
        first = await client.post(ITEMS, json=body, headers=headers)
        assert first.status_code == 201
    async with running_app(env) as (client, _):
        headers = {**await login(client, "admin"), "Idempotency-Key": "restart-key-1", "Prefer": "wait=20"}
        second = await client.post(ITEMS, json=body, headers=headers)
        page = (await client.get(ITEMS, params={"q": "RESTART-1"}, headers=headers)).json()
    assert second.status_code == first.status_code and second.content == first.content
    assert page["total"] == 1
