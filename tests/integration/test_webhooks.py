"""Outbound webhooks on a real deployment (embedded log, real SQLite files, real HTTP) delivering
to the README's receiver (examples/webhook_receiver.py), which checks every signature."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.bootstrap import Container
from app.listener.store import InventoryStore
from app.webhooks.store import NewDelivery, WebhookStore, delivery_id
from tests.conftest import running_app
from tests.support.app import base_env, item_body, login
from tests.support.services import free_port
from tests.support.waiting import eventually
from tests.support.webhooks import SECRET, receiver

ITEMS = "/api/v1/inventory/items"
HOOKS = "/api/v1/webhooks"
WAIT = {"Prefer": "wait=20"}
ALL_KINDS = [
    "item.created", "item.changed", "item.deleted", "stock.changed", "stock.low", "stock.out",
    "stock.back_in_stock", "reservation.expired", "transfer.received",
]  # fmt: skip


def hook_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return base_env(
        data_dir,
        INVENTORY_WEBHOOKS_ALLOW_PRIVATE="1",
        INVENTORY_WEBHOOKS_RETRY_BASE="0.05",
        INVENTORY_WEBHOOKS_RETRY_MAX="0.2",
        **extra,
    )


class Api:
    def __init__(self, client: httpx.AsyncClient, container: Container, headers: dict[str, str]) -> None:
        self.client = client
        self.container = container
        self.headers = headers

    async def register(self, url: str, events: list[str] | None = None, **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            HOOKS, json={"url": url, "events": events or ALL_KINDS, "secret": SECRET, **body}, headers=self.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def create(self, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(ITEMS, json=item_body(**fields), headers={**self.headers, **WAIT})
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def adjust(self, item_id: str, quantity: int) -> None:
        response = await self.client.post(
            f"{ITEMS}/{item_id}/adjust", json={"quantity": quantity}, headers={**self.headers, **WAIT}
        )
        assert response.status_code in (200, 201), response.text

    async def endpoint(self, hook_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{HOOKS}/{hook_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def deliveries(self, hook_id: str, state: str | None = None) -> list[dict[str, Any]]:
        params = {"state": state} if state else {}
        response = await self.client.get(f"{HOOKS}/{hook_id}/deliveries", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return list(response.json())


@asynccontextmanager
async def api_for(env: dict[str, str]) -> AsyncIterator[Api]:
    async with running_app(env) as (client, container):
        yield Api(client, container, await login(client, "admin"))


@pytest.fixture
async def api(data_dir: Path) -> AsyncIterator[Api]:
    async with api_for(hook_env(data_dir, INVENTORY_WEBHOOKS_MAX_ATTEMPTS="3")) as value:
        yield value


def item_events(events: list[dict[str, Any]], item_id: str) -> list[dict[str, Any]]:
    def about(event: dict[str, Any]) -> str:
        data = event["data"]
        return str(data.get("item", {}).get("id") or data.get("item_id"))

    return [e for e in events if about(e) == item_id]


async def test_deliveries_are_signed_filtered_by_kind_and_in_order_per_item(api: Api) -> None:
    with receiver() as everything, receiver() as creations:
        await api.register(everything.url)
        await api.register(creations.url, ["item.created"])
        items = [await api.create(quantity=10), await api.create(quantity=20)]
        for step in (1, -2, 3, -4, 5):
            for item in items:
                await api.adjust(item["id"], step)

        await eventually(lambda: _async(len(everything.events()) >= 12), timeout=30)
        await eventually(lambda: _async(len(creations.events()) >= 2), timeout=30)
        for item in items:
            mine = item_events(everything.events(), item["id"])
            assert [e["type"] for e in mine] == ["item.created"] + ["stock.changed"] * 5
            seqs = [e["data"]["seq"] for e in mine]
            assert seqs == sorted(seqs)  # in commit order, per item
            assert [e["data"]["quantity"] for e in mine[1:]] == [item["quantity"] + q for q in (1, -1, 2, -2, 3)]
        assert {e["type"] for e in creations.events()} == {"item.created"}
        # Every request carried a valid signature (a bad one is refused with 401 and counted).
        assert everything.receiver.rejected == 0 and creations.receiver.rejected == 0
        # The body's id is the delivery id of the header.
        assert all(did == body["id"] for did, body in everything.receiver.deliveries)


async def _async(value: Any) -> Any:
    return value


async def test_a_healthy_receiver_gets_each_of_hundreds_of_deliveries_exactly_once(api: Api) -> None:
    # Hundreds queued for one endpoint, several in flight at once, their marks committed while the
    # fan-out writes more: a receiver answering 2xx must never see a delivery twice.
    with receiver() as running:
        hook = await api.register(running.url, ["stock.changed"])
        items = [(await api.create(quantity=0))["id"] for _ in range(12)]
        commands = 360
        limit = asyncio.Semaphore(16)

        async def adjust(n: int) -> None:
            async with limit:
                response = await api.client.post(
                    f"{ITEMS}/{items[n % len(items)]}/adjust", json={"quantity": 1}, headers=api.headers
                )
                assert response.status_code == 202, response.text

        await asyncio.gather(*(adjust(n) for n in range(commands)))
        # One stock.changed per committed change (the listener may apply several adjusts of an
        # item in one change): done when each item's final quantity arrived and nothing is pending.
        final = commands // len(items)
        await eventually(lambda: _async(_quantities(running.events()) == dict.fromkeys(items, final)), timeout=180)
        await eventually(lambda: _pending(api, hook["id"]), timeout=60)
        arrivals = list(running.receiver.arrivals)
        assert running.receiver.duplicates == 0 and len(arrivals) == len(set(arrivals))
        assert running.receiver.rejected == 0
        counts = (await api.endpoint(hook["id"]))["deliveries"]
        assert counts["delivered"] == len(arrivals) and counts.get("dead", 0) == 0


def _quantities(events: list[dict[str, Any]]) -> dict[str, int]:
    latest: dict[str, int] = {}
    for event in events:
        item_id = event["data"]["item_id"]
        latest[item_id] = max(latest.get(item_id, 0), event["data"]["quantity"])
    return latest


async def _pending(api: Api, hook_id: str) -> bool:
    return (await api.endpoint(hook_id))["deliveries"].get("pending", 0) == 0


async def test_a_receiver_down_then_up_gets_everything(data_dir: Path) -> None:
    port = free_port()
    # Enough attempts to outlast the outage (the default spreads them over about an hour).
    async with api_for(hook_env(data_dir, INVENTORY_WEBHOOKS_MAX_ATTEMPTS="1000")) as api:
        hook = await api.register(f"http://127.0.0.1:{port}/hook", ["item.created"])
        created = [await api.create() for _ in range(3)]
        # Nobody listens: attempts fail and are retried.
        failing = await eventually(lambda: _last_error(api, hook["id"]), timeout=30)
        assert "Connect" in failing or "refused" in failing.lower()
        await eventually(lambda: _attempted_twice(api, hook["id"]), timeout=30)
        with receiver(port=port) as up:
            await eventually(lambda: _async(len(up.events()) >= 3), timeout=30)
            assert {e["data"]["item"]["id"] for e in up.events()} == {item["id"] for item in created}
            assert up.receiver.rejected == 0
            await eventually(lambda: _all_delivered(api, hook["id"], 3), timeout=30)


async def _attempted_twice(api: Api, hook_id: str) -> bool:
    return any(d["attempts"] >= 2 for d in await api.deliveries(hook_id))


async def _all_delivered(api: Api, hook_id: str, count: int) -> bool:
    deliveries = await api.deliveries(hook_id)
    return len(deliveries) == count and all(d["state"] == "delivered" for d in deliveries)


async def _last_error(api: Api, hook_id: str) -> str | None:
    return (await api.endpoint(hook_id)).get("last_error")


async def test_a_slow_receiver_does_not_delay_another_endpoint(data_dir: Path) -> None:
    async with api_for(hook_env(data_dir, INVENTORY_WEBHOOKS_TIMEOUT="60")) as api:
        with receiver(delay=30) as slow, receiver() as fast:
            await api.register(slow.url, ["item.created", "stock.changed"])
            await api.register(fast.url, ["item.created", "stock.changed"])
            first = await api.create(quantity=1)
            await eventually(lambda: _async(slow.receiver.in_progress >= 1), timeout=30)
            # The slow receiver is hanging on its first delivery: the fast one gets new ones.
            second = await api.create(quantity=2)
            await api.adjust(first["id"], 5)
            await eventually(lambda: _async(len(fast.events()) >= 3), timeout=30)
            assert slow.receiver.in_progress >= 1
            assert slow.events() == []
            assert {e["type"] for e in fast.events()} == {"item.created", "stock.changed"}
            assert {e["data"].get("item", {}).get("id") for e in fast.events("item.created")} == {
                first["id"],
                second["id"],
            }


async def test_500_is_retried_then_dead_then_redelivered_and_dead_in_a_row_pauses(data_dir: Path) -> None:
    env = hook_env(data_dir, INVENTORY_WEBHOOKS_MAX_ATTEMPTS="3", INVENTORY_WEBHOOKS_PAUSE_AFTER="2")
    async with api_for(env) as api:
        with receiver(status=500) as broken:
            hook = await api.register(broken.url, ["item.created"])
            await api.create()
            dead = await eventually(lambda: api.deliveries(hook["id"], "dead"), timeout=30)
            assert len(dead) == 1 and dead[0]["attempts"] == 3 and dead[0]["last_status"] == 500
            # Three attempts, all with the same delivery id.
            assert broken.receiver.arrivals == [dead[0]["id"]] * 3
            assert (await api.endpoint(hook["id"]))["state"] == "active"

            await api.create()
            paused = await eventually(lambda: _paused(api, hook["id"]), timeout=30)
            assert "2 deliveries in a row" in paused["paused_reason"]
            assert paused["deliveries"]["dead"] == 2

            broken.receiver.status = 200
            response = await api.client.post(f"{HOOKS}/{hook['id']}/resume", headers=api.headers)
            assert response.status_code == 200 and response.json()["state"] == "active"
            ids = [d["id"] for d in await api.deliveries(hook["id"], "dead")]
            for delivery_id in ids:
                response = await api.client.post(
                    f"{HOOKS}/{hook['id']}/deliveries/{delivery_id}/redeliver", headers=api.headers
                )
                assert response.status_code == 202, response.text
                assert response.json()["state"] == "pending"
            await eventually(lambda: _async(broken.receiver.seen() == set(ids)), timeout=30)
            assert await api.deliveries(hook["id"], "dead") == []


async def _paused(api: Api, hook_id: str) -> dict[str, Any] | None:
    endpoint = await api.endpoint(hook_id)
    return endpoint if endpoint["state"] == "paused" else None


async def test_410_pauses_the_endpoint_at_once_and_keeps_its_deliveries(api: Api) -> None:
    with receiver(status=410) as gone, receiver() as other:
        hook = await api.register(gone.url, ["item.created"])
        await api.register(other.url, ["item.created"])
        item = await api.create()
        paused = await eventually(lambda: _paused(api, hook["id"]), timeout=30)
        assert "410" in paused["paused_reason"]
        assert len(gone.receiver.arrivals) == 1  # no retry: paused at once
        kept = await api.deliveries(hook["id"])
        assert [d["state"] for d in kept] == ["pending"] and kept[0]["last_status"] == 410
        await eventually(lambda: _async(len(other.events()) == 1), timeout=30)  # others unaffected

        gone.receiver.status = 200
        response = await api.client.post(f"{HOOKS}/{hook['id']}/resume", headers=api.headers)
        assert response.status_code == 200
        await eventually(lambda: _async(len(gone.events()) == 1), timeout=30)
        assert gone.events()[0]["data"]["item"]["id"] == item["id"]
        assert gone.events()[0]["id"] == kept[0]["id"]


async def test_private_addresses_and_other_schemes_are_refused_without_the_setting(data_dir: Path) -> None:
    async with api_for(base_env(data_dir)) as api:

        async def register(url: str) -> httpx.Response:
            return await api.client.post(HOOKS, json={"url": url, "events": ["item.created"]}, headers=api.headers)

        # Well formed, but the address is not public: the deployment forbids it.
        for url in ("http://127.0.0.1:9/hook", "http://localhost/hook", "http://169.254.169.254/", "http://10.0.0.8/"):
            response = await register(url)
            assert response.status_code == 403, (url, response.text)
            assert response.json()["details"][0]["field"] == "url"
            assert "public" in response.json()["message"]
        for url in ("ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "javascript:alert(1)"):
            response = await register(url)
            assert response.status_code == 400, (url, response.text)
            assert response.json()["details"][0]["field"] == "url"
        assert (await register("http://[::1]/x")).status_code == 400
        assert (await api.client.get(HOOKS, headers=api.headers)).json() == []
        # A name that does not resolve yet is accepted: each attempt resolves (and checks) again.
        later = await register("https://receiver.invalid/hook")
        assert later.status_code == 201, later.text


async def test_the_api_is_for_admins_and_the_secret_is_shown_once(api: Api) -> None:
    manager = await login(api.client, "manager")
    response = await api.client.get(HOOKS, headers=manager)
    assert response.status_code == 403
    hook = await api.register("http://127.0.0.1:9/hook", ["stock.low", "item.created"], secret=None)
    assert hook["secret"].startswith("whsec_") and hook["state"] == "active"
    assert hook["events"] == ["item.created", "stock.low"]
    listed = (await api.client.get(HOOKS, headers=api.headers)).json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    bad = await api.client.post(HOOKS, json={"url": "http://127.0.0.1/", "events": ["nope"]}, headers=api.headers)
    assert bad.status_code == 400
    assert (await api.client.delete(f"{HOOKS}/{hook['id']}", headers=api.headers)).status_code == 204
    assert (await api.client.get(f"{HOOKS}/{hook['id']}", headers=api.headers)).status_code == 404


async def test_the_outbox_is_not_pruned_past_what_the_webhooks_fanned_out(data_dir: Path) -> None:
    env = hook_env(data_dir)
    async with api_for(env) as api:
        for _ in range(4):
            await api.create()
        assert api.container.webhooks is not None
        floor = await eventually(lambda: _cursor_at_least(api, 4), timeout=30)
    store = InventoryStore(data_dir / "inventory.db")
    await store.open()
    try:
        keep_after = floor - 2
        await store.prune(
            changes_before="9999-12-31T00:00:00.000Z", processed_before=0, limit=1000, keep_after=keep_after
        )
        remaining = [row[0] for row in await store.conn.execute_fetchall("SELECT seq FROM changes ORDER BY seq")]
        assert remaining and min(remaining) == keep_after + 1
    finally:
        await store.close()


async def _cursor_at_least(api: Api, seq: int) -> int | None:
    assert api.container.webhooks is not None
    cursor = await api.container.webhooks.cursor()
    return cursor if cursor >= seq else None


def test_the_receiver_refuses_a_bad_signature() -> None:
    with receiver() as running:
        body = b'{"id":"x","type":"item.created","created_at":"","data":{}}'
        response = httpx.post(
            running.url,
            content=body,
            headers={"Inventory-Webhook-Id": "x", "Inventory-Webhook-Signature": "t=1,v1=00"},
        )
        assert response.status_code == 401
        assert running.receiver.rejected == 1 and running.events() == []


async def test_a_failing_delivery_holds_back_its_item_only_and_a_fan_out_is_never_repeated(data_dir: Path) -> None:
    store = WebhookStore(data_dir / "webhooks.db")
    await store.open()
    try:
        endpoint = await store.add_endpoint("http://127.0.0.1:9/", ["stock.changed"], SECRET)

        def new(seq: int, item: str) -> NewDelivery:
            return NewDelivery(endpoint.id, delivery_id(endpoint.id, seq, 0), "stock.changed", item, b"{}", seq, "t")

        assert await store.fan_out(0, 3, [new(1, "A"), new(2, "A"), new(3, "B")])
        # The same range again (a second dispatcher, or a retry after a lost answer): refused.
        assert not await store.fan_out(0, 3, [new(1, "A"), new(2, "A"), new(3, "B")])
        assert await store.cursor() == 3
        now = time.time()
        heads = await store.due(endpoint.id, now, 10)
        assert [(d.item_id, d.seq) for d in heads] == [("A", 1), ("B", 3)]  # A's second waits behind its first

        first_a = heads[0]
        await store.failed(first_a, status=500, error="HTTP 500", dead=False, next_attempt_at=now + 60, pause_after=5)
        # A is held back (its first is in backoff, its second waits); B goes on.
        assert [(d.item_id, d.seq) for d in await store.due(endpoint.id, now, 10)] == [("B", 3)]
        await store.delivered(heads[1], 200)
        assert await store.due(endpoint.id, now, 10) == []
        assert [d.seq for d in await store.due(endpoint.id, now + 61, 10)] == [1]

        # Dead, it no longer holds its item back; redelivered, it is first of its item again.
        await store.failed(first_a, status=500, error="HTTP 500", dead=True, next_attempt_at=now, pause_after=5)
        assert [d.seq for d in await store.due(endpoint.id, now, 10)] == [2]
        again = await store.redeliver(endpoint.id, first_a.id)
        assert (again.id, again.state, again.attempts) == (first_a.id, "pending", 0)
        assert [d.seq for d in await store.due(endpoint.id, now, 10)] == [1]
    finally:
        await store.close()
