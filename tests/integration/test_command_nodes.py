"""Two command nodes, as real processes (docs/scaling.md): a retry under the same
Idempotency-Key that reaches the other node is the same command, applied once. With Redis the
nodes share the key's record (and its answer); without it the derived ids alone make the retry
publish the very same event, which the listener drops. Redis away: keyed commands are refused
(503), unkeyed ones go on. Answers that know the outcome carry X-Inventory-Seq, which a query
node honours as X-Min-Seq."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis as redis_client

from tests.support.nodes import NodeStack, node_stack
from tests.support.services import RedisServer, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka

ITEMS = "/api/v1/inventory/items"


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own: the tests stop it and flush it."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("nodes-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, private_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeStack]:
    base = tmp_path_factory.mktemp("command-nodes")
    (base / "logs").mkdir()
    with node_stack(
        kafka_bootstrap, private_redis.url, base / "data", base / "logs", query_nodes=1, command_nodes=2
    ) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def bare_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeStack]:
    base = tmp_path_factory.mktemp("command-nodes-bare")
    (base / "logs").mkdir()
    with node_stack(kafka_bootstrap, None, base / "data", base / "logs", query_nodes=1, command_nodes=2) as nodes:
        yield nodes


def reserve(
    stack: NodeStack,
    node: int,
    headers: dict[str, str],
    item_id: str,
    quantity: int,
    *,
    key: str | None = None,
    wait: bool = False,
) -> httpx.Response:
    sent = dict(headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    if wait:
        sent["Prefer"] = "wait=20"
    return httpx.post(
        f"{stack.commands[node].url}{ITEMS}/{item_id}/reserve", json={"quantity": quantity}, headers=sent, timeout=30
    )


def item_on_query(
    stack: NodeStack, headers: dict[str, str], item_id: str, min_seq: int | None = None
) -> httpx.Response:
    sent = dict(headers) if min_seq is None else {**headers, "X-Min-Seq": str(min_seq)}
    return httpx.get(f"{stack.queries[0].url}{ITEMS}/{item_id}", headers=sent, timeout=30)


def settled(stack: NodeStack, headers: dict[str, str], item_id: str) -> dict[str, Any]:
    """The item once everything sent for it before has been decided: an unkeyed reserve of one
    unit, waited for, goes through the item's partition after whatever came before it."""
    sentinel = reserve(stack, 0, headers, item_id, 1, wait=True)
    assert sentinel.status_code == 200, sentinel.text
    seq = int(sentinel.headers["X-Inventory-Seq"])
    response = item_on_query(stack, headers, item_id, seq)
    assert response.status_code == 200, response.text
    return dict(response.json())


def reservations_in_history(stack: NodeStack, headers: dict[str, str], item_id: str, command_id: str) -> int:
    history = httpx.get(f"{stack.queries[0].url}{ITEMS}/{item_id}/history", headers=headers, timeout=30)
    assert history.status_code == 200, history.text
    return sum(1 for entry in history.json()["entries"] if entry["command_id"] == command_id)


def same_answer(first: httpx.Response, second: httpx.Response) -> None:
    assert second.status_code == first.status_code, second.text
    assert second.content == first.content
    for name in ("Location", "X-Command-ID", "X-Reservation-ID"):
        assert second.headers.get(name) == first.headers.get(name), name


def test_a_retry_on_the_other_node_is_the_same_command_with_redis(stack: NodeStack) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="NODES-R1", name="Keyed", quantity=50)
    key = f"k-{uuid.uuid4()}"
    first = reserve(stack, 0, admin, item["id"], 3, key=key)
    assert first.status_code == 202, first.text
    second = reserve(stack, 1, admin, item["id"], 3, key=key)
    same_answer(first, second)
    # Another body under the key is refused on either node.
    assert reserve(stack, 1, admin, item["id"], 4, key=key).status_code == 422
    # Two nodes racing on one fresh key agree on one command.
    raced_key = f"k-{uuid.uuid4()}"
    with ThreadPoolExecutor(2) as pool:
        raced = list(pool.map(lambda node: reserve(stack, node, admin, item["id"], 5, key=raced_key), (0, 1)))
    assert {r.status_code for r in raced} == {202}, [r.text for r in raced]
    assert raced[0].json()["command_id"] == raced[1].json()["command_id"]
    # Waited for: the same 200 from the other node, with the sequence of the outcome.
    waited_key = f"k-{uuid.uuid4()}"
    waited = reserve(stack, 0, admin, item["id"], 7, key=waited_key, wait=True)
    assert waited.status_code == 200, waited.text
    assert int(waited.headers["X-Inventory-Seq"]) > 0
    same_answer(waited, reserve(stack, 1, admin, item["id"], 7, key=waited_key, wait=True))

    now = settled(stack, admin, item["id"])
    assert now["reserved"] == 3 + 5 + 7 + 1
    for response in (first, raced[0], waited):
        command_id = response.headers["X-Command-ID"]
        assert reservations_in_history(stack, admin, item["id"], command_id) == 1


def test_a_retry_on_the_other_node_is_the_same_command_without_redis(bare_stack: NodeStack) -> None:
    stack = bare_stack
    admin = stack.token()
    # A create retried on the other node names the same new item.
    create_key = f"c-{uuid.uuid4()}"
    body = {"sku": "NODES-B1", "name": "Bare", "quantity": 40}
    created = [
        httpx.post(
            f"{stack.commands[node].url}{ITEMS}",
            json=body,
            headers={**admin, "Idempotency-Key": create_key},
            timeout=30,
        )
        for node in (0, 1)
    ]
    assert [c.status_code for c in created] == [202, 202], [c.text for c in created]
    assert created[0].content == created[1].content
    item_id = created[0].json()["item_id"]
    wait_until(lambda: item_on_query(stack, admin, item_id).status_code == 200)

    key = f"k-{uuid.uuid4()}"
    first = reserve(stack, 0, admin, item_id, 3, key=key)
    second = reserve(stack, 1, admin, item_id, 3, key=key)
    assert first.status_code == second.status_code == 202, second.text
    # Derived ids: the same command, event and reservation, so the very same 202.
    assert second.content == first.content
    assert second.headers["X-Reservation-ID"] == first.headers["X-Reservation-ID"]
    now = settled(stack, admin, item_id)
    assert now["reserved"] == 3 + 1
    assert now["quantity"] == 40
    assert reservations_in_history(stack, admin, item_id, first.json()["command_id"]) == 1


def test_a_waited_answer_tells_the_sequence_a_query_node_reads_at(stack: NodeStack) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="NODES-S1", name="Sequenced", quantity=30)
    for node in (0, 1):
        waited = reserve(stack, node, admin, item["id"], 2, key=f"s-{uuid.uuid4()}", wait=True)
        assert waited.status_code == 200, waited.text
        seq = int(waited.headers["X-Inventory-Seq"])
        read = item_on_query(stack, admin, item["id"], seq)
        assert read.status_code == 200, read.text
        assert read.json()["version"] >= waited.json()["version"]
        assert int(read.headers["X-Inventory-Seq"]) >= seq
        # The status resource on a command node tells a sequence too once the outcome is known.
        status_url = waited.headers["Location"]
        status = httpx.get(f"{stack.commands[1 - node].url}{status_url}", headers=admin, timeout=30)
        assert status.status_code == 200, status.text
        assert status.json()["status"] == "applied"
        assert int(status.headers["X-Inventory-Seq"]) > 0
        assert item_on_query(stack, admin, item["id"], int(status.headers["X-Inventory-Seq"])).status_code == 200


def test_redis_away_refuses_keyed_commands_only_and_a_flush_applies_a_retry_once(
    stack: NodeStack, private_redis: RedisServer
) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="NODES-D1", name="Down", quantity=500)
    private_redis.stop()
    try:
        for round_ in range(3):
            for node in (0, 1):
                keyed = reserve(stack, node, admin, item["id"], 1, key=f"d-{round_}-{node}-{uuid.uuid4()}")
                assert keyed.status_code == 503, keyed.text
                assert keyed.headers["Retry-After"].isdigit()
                unkeyed = reserve(stack, node, admin, item["id"], 1)
                assert unkeyed.status_code == 202, unkeyed.text
    finally:
        private_redis.start()
    # Back (empty): keyed commands work again by themselves.
    back_key = f"b-{uuid.uuid4()}"

    def keyed_again() -> httpx.Response | None:
        response = reserve(stack, 0, admin, item["id"], 2, key=back_key)
        return response if response.status_code == 202 else None

    back = wait_until(keyed_again, timeout=30, interval=0.5)
    same_answer(back, reserve(stack, 1, admin, item["id"], 2, key=back_key))

    # A key recorded before Redis lost its data, retried after: applied once (derived ids).
    flush_key = f"f-{uuid.uuid4()}"
    before = reserve(stack, 0, admin, item["id"], 10, key=flush_key, wait=True)
    assert before.status_code == 200, before.text
    redis_client.Redis.from_url(private_redis.url).flushall()
    after = reserve(stack, 1, admin, item["id"], 10, key=flush_key)
    assert after.status_code in (200, 202), after.text
    assert after.headers["X-Command-ID"] == before.headers["X-Command-ID"]
    now = settled(stack, admin, item["id"])
    # 6 unkeyed while Redis was away, the key back (2), the flushed key once (10), the sentinel.
    assert now["reserved"] == 6 + 2 + 10 + 1
    assert reservations_in_history(stack, admin, item["id"], before.headers["X-Command-ID"]) == 1


def test_the_author_sees_a_decided_command_on_a_node_that_never_saw_it(stack: NodeStack) -> None:
    admin, clerk, viewer = stack.token(), stack.token("clerk"), stack.token("viewer")
    item = stack.create_item(admin, sku=f"NODES-A-{uuid.uuid4().hex[:6]}", name="Author", quantity=5)
    sent = reserve(stack, 0, clerk, item["id"], 1, wait=True)
    assert sent.status_code == 200, sent.text
    command_id = sent.headers["X-Command-ID"]
    status_url = f"{stack.commands[1].url}/api/v1/commands/{command_id}"
    # Node 2 has no record of it; the outcome it replicated names the author.
    wait_until(lambda: httpx.get(status_url, headers=admin, timeout=30).status_code == 200, timeout=60)
    mine = httpx.get(status_url, headers=clerk, timeout=30)
    assert mine.status_code == 200 and mine.json()["status"] == "applied"
    # Anyone else below manager gets the same 404 as for an unknown id.
    assert httpx.get(status_url, headers=viewer, timeout=30).status_code == 404
