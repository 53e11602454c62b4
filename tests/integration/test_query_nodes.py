"""The sequence a read reflects (X-Inventory-Seq) and "at least this sequence" (X-Min-Seq,
min_seq), as real processes."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.domain.events import Event
from app.eventlog.kafka import KafkaEventLog
from tests.support.app import settings_for
from tests.support.events import adjust, create, message, query, release, reserve
from tests.support.nodes import NodeStack, node_stack
from tests.support.processes import ServiceProcess
from tests.support.sse import SseCollector
from tests.support.stack import split_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka


def get(node_url: str, path: str, headers: dict[str, str], **params: Any) -> httpx.Response:
    response = httpx.get(f"{node_url}{path}", headers=headers, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_a_query_role_on_the_listeners_disk_answers_with_the_feeds_sequence(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Without a listener address the query role reads the listener's file and its own feed: the
    # same headers, from the last change the feed announced.
    (tmp_path / "logs").mkdir()
    with split_stack(kafka_bootstrap, None, tmp_path / "data", tmp_path / "logs") as shared:
        headers = shared.token("admin")
        created = httpx.post(
            f"{shared.command.url}/api/v1/inventory/items",
            json={"sku": f"SEQ-{uuid.uuid4().hex[:6]}", "name": "Mug", "quantity": 1},
            headers={**headers, "Prefer": "wait=20"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        seq = query(tmp_path / "data" / "inventory.db", "SELECT MAX(seq) FROM changes")[0][0]
        wait_until(
            lambda: (
                int(
                    get(shared.query.url, f"/api/v1/inventory/items/{created.json()['id']}", headers).headers[
                        "X-Inventory-Seq"
                    ]
                )
                >= seq
            ),
            timeout=30,
        )
        # Already there: answered at once. Beyond: 503 behind after the wait.
        read = httpx.get(
            f"{shared.query.url}/api/v1/inventory/items", headers={**headers, "X-Min-Seq": str(seq)}, timeout=30
        )
        assert read.status_code == 200
        behind = httpx.get(
            f"{shared.query.url}/api/v1/inventory/items", params={"min_seq": seq + 100}, headers=headers, timeout=30
        )
        assert behind.status_code == 503
        assert behind.headers["Retry-After"] == "1"
        assert behind.json() == {
            "error": "behind",
            "message": behind.json()["message"],
            "details": {"seq": seq, "min_seq": seq + 100},
        }


# --- query nodes with replicas of their own ------------------------------------------------------
# Each node has its own data directory and reaches the listener only through Kafka and its HTTP
# address (tests/support/nodes.py). The load goes straight onto the command topics, as command
# services put it there, so that tens of thousands of changes take seconds.

# Every table a reader reads, compared whole (the outbox without its local receive time).
READ_MODEL = {
    "items": "SELECT * FROM items ORDER BY id",
    "stock_levels": "SELECT * FROM stock_levels ORDER BY item_id, location",
    "history": "SELECT * FROM history ORDER BY id",
    "transfers": "SELECT * FROM transfers ORDER BY id",
    "reservations": "SELECT * FROM reservations ORDER BY seq",
    "alerts": "SELECT * FROM alerts ORDER BY id",
    "command_outcomes": "SELECT * FROM command_outcomes ORDER BY command_id",
    "changes": "SELECT seq, kind, item_id, payload FROM changes ORDER BY seq",
}
ITEMS = "/api/v1/inventory/items"


def read_model(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {name: query(db, sql) for name, sql in READ_MODEL.items()}


def load(item_ids: list[str], count: int, seed: int) -> list[Event]:
    """Adjusts, reserves and releases spread over the items and stores: two changes each."""
    rng = random.Random(seed)
    steps: list[Event] = []
    for _ in range(count):
        item, location = rng.choice(item_ids), rng.choice(["MAIN", "S001", "S002"])
        roll = rng.random()
        if roll < 0.5:
            steps.append(adjust(item, rng.choice([1, 2, 5, -1]), location=location))
        elif roll < 0.8:
            steps.append(reserve(item, 1, location=location))
        else:
            steps.append(release(item, 1, location=location))
    return steps


def publish(stack: NodeStack, events: list[Event], *, pause: float = 0.0) -> None:
    """Put events on the deployment's command topics, in batches (``pause`` seconds apart)."""

    async def run() -> None:
        log = KafkaEventLog(
            stack.env["INVENTORY_KAFKA_BOOTSTRAP"],
            client_id="test-load",
            topic_prefix=stack.env["INVENTORY_KAFKA_TOPIC_PREFIX"],
        )
        await log.start()
        try:
            for start in range(0, len(events), 500):
                await log.publish([message(e) for e in events[start : start + 500]])
                if pause:
                    await asyncio.sleep(pause)
        finally:
            await log.stop()

    asyncio.run(run())


def decided(stack: NodeStack) -> int:
    return int(query(stack.listener_dir / "inventory.db", "SELECT COUNT(*) FROM command_outcomes")[0][0])


def last_seq(stack: NodeStack) -> int:
    rows = query(stack.listener_dir / "inventory.db", "SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
    return int(rows[0][0]) if rows else 0


def replica_seq(node: ServiceProcess) -> int:
    try:
        ready = httpx.get(f"{node.url}/api/v1/ready", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return -1
    return int(ready["checks"].get("replica", {}).get("seq", -1))


def settle(stack: NodeStack, expected_outcomes: int) -> int:
    """Wait until the listener decided everything and every query node applied it all."""
    wait_until(lambda: decided(stack) >= expected_outcomes, timeout=300, interval=0.2)
    final = last_seq(stack)
    for node in stack.queries:
        wait_until(lambda node=node: replica_seq(node) >= final, timeout=300, interval=0.2)
    return final


def answers(node: ServiceProcess, headers: dict[str, str], item_ids: list[str]) -> list[Any]:
    """What a screen reads from a node: a list page, items, their stock and history."""
    seen: list[Any] = [get(node.url, ITEMS, headers, page_size=100, sort="sku").json()]
    for item_id in item_ids:
        seen.append(get(node.url, f"{ITEMS}/{item_id}", headers).json())
        seen.append(get(node.url, f"{ITEMS}/{item_id}/history", headers, page_size=50).json())
    return seen


@pytest.fixture
def nodes(kafka_bootstrap: str, tmp_path: Path) -> Iterator[NodeStack]:
    (tmp_path / "logs").mkdir()
    with node_stack(
        kafka_bootstrap, None, tmp_path / "data", tmp_path / "logs", query_nodes=2, command_nodes=0
    ) as made:
        yield made


def created_items(stack: NodeStack, count: int) -> list[str]:
    item_ids = [str(uuid.uuid4()) for _ in range(count)]
    publish(stack, [create(item, f"N-{n:04d}", quantity=1000) for n, item in enumerate(item_ids)])
    wait_until(lambda: decided(stack) >= count, timeout=120, interval=0.2)
    return item_ids


def test_a_node_started_after_50000_changes_catches_up_and_answers_like_the_first(nodes: NodeStack) -> None:
    item_ids = created_items(nodes, 200)
    sent, final = 200, 0
    while final <= 50_000:  # a batch's changes to one item make one record: count the records
        publish(nodes, load(item_ids, 10_000, seed=sent))
        sent += 10_000
        final = settle(nodes, sent)
    late = nodes.add_query_node()
    wait_until(lambda: replica_seq(late) >= final, timeout=300, interval=0.2)

    listener = read_model(nodes.listener_dir / "inventory.db")
    for node in ("query1", "query2", "query3"):
        assert read_model(nodes.base / node / "replica.db") == listener, node
    headers = nodes.token()
    sample = item_ids[:5]
    first = answers(nodes.queries[0], headers, sample)
    assert answers(late, headers, sample) == first


def test_a_query_node_killed_during_load_comes_back_without_gaps_and_its_streams_resume(nodes: NodeStack) -> None:
    item_ids = created_items(nodes, 20)
    headers = nodes.token()
    victim = nodes.queries[1]
    stream = SseCollector(f"{victim.url}/api/v1/inventory/stream", headers).start()
    wait_until(lambda: stream.connections > 0)
    steps = load(item_ids, 6000, seed=2)
    loader = threading.Thread(target=publish, args=(nodes, steps), kwargs={"pause": 0.05})
    loader.start()
    wait_until(lambda: len(stream.events) > 200, timeout=120)
    victim.kill()
    victim.start()
    loader.join()
    final = settle(nodes, 20 + len(steps))
    wait_until(lambda: stream.last_id is not None and int(stream.last_id) >= final, timeout=120)
    stream.stop()

    assert stream.connections >= 2
    assert [event for event, _, _ in stream.events if event == "reset"] == []
    ids = [int(event_id) for _, event_id, _ in stream.events]
    assert ids == sorted(set(ids)), "a change was sent twice or out of order"
    # The chain-wide stream carries every change: from its first one on, none is missing.
    assert ids == list(range(ids[0], final + 1))
    assert read_model(nodes.base / "query2" / "replica.db") == read_model(nodes.listener_dir / "inventory.db")


def test_both_query_nodes_converge_on_the_listeners_state_when_it_is_killed_during_load(nodes: NodeStack) -> None:
    item_ids = created_items(nodes, 20)
    steps = load(item_ids, 8000, seed=3)
    loader = threading.Thread(target=publish, args=(nodes, steps), kwargs={"pause": 0.05})
    loader.start()
    wait_until(lambda: decided(nodes) > 2000, timeout=120, interval=0.1)
    nodes.listener.kill()
    nodes.listener.start()
    loader.join()
    settle(nodes, 20 + len(steps))
    # The listener's file is the log's replay (the crash matrix proves that); the replicas equal it.
    listener = read_model(nodes.listener_dir / "inventory.db")
    for node in ("query1", "query2"):
        assert read_model(nodes.base / node / "replica.db") == listener, node


def test_a_snapshot_taken_during_heavy_writes_holds_exactly_its_sequence(nodes: NodeStack, tmp_path: Path) -> None:
    item_ids = created_items(nodes, 20)
    steps = load(item_ids, 6000, seed=4)
    loader = threading.Thread(target=publish, args=(nodes, steps), kwargs={"pause": 0.02})
    loader.start()
    internal = {"Authorization": f"Bearer {settings_for(nodes.listener.env).internal_token}"}
    taken: list[tuple[int, Path]] = []
    while loader.is_alive() or not taken:
        response = httpx.get(f"{nodes.listener.url}/internal/snapshot", headers=internal, timeout=60)
        assert response.status_code == 200
        path = tmp_path / f"snapshot-{len(taken)}.db"
        path.write_bytes(response.content)
        taken.append((int(response.headers["X-Inventory-Seq"]), path))
    loader.join()
    settle(nodes, 20 + len(steps))
    outbox = query(nodes.listener_dir / "inventory.db", "SELECT seq, payload FROM changes WHERE kind = 'outcome'")
    for seq, path in taken:
        assert query(path, "SELECT MAX(seq) FROM changes") == [(seq,)]
        held = {row[0] for row in query(path, "SELECT command_id FROM command_outcomes")}
        expected = {json.loads(payload)["command_id"] for s, payload in outbox if s <= seq}
        assert held == expected, f"the snapshot at {seq} does not hold exactly the outcomes up to it"
    assert len({seq for seq, _ in taken}) > 1  # taken while the writes went on
    assert not list(nodes.listener_dir.glob("snapshot-*"))  # each copy gone once sent


def test_a_node_reads_at_least_the_sequence_it_is_asked_for(nodes: NodeStack) -> None:
    item_ids = created_items(nodes, 2)
    headers = nodes.token()
    publish(nodes, [adjust(item_ids[0], 7)])
    settle(nodes, 3)
    seq = last_seq(nodes)
    for node in nodes.queries:
        read = httpx.get(f"{node.url}{ITEMS}/{item_ids[0]}", headers={**headers, "X-Min-Seq": str(seq)}, timeout=30)
        assert read.status_code == 200 and int(read.headers["X-Inventory-Seq"]) >= seq
        assert read.json()["quantity"] == 1007
        behind = httpx.get(f"{node.url}{ITEMS}", params={"min_seq": seq + 1000}, headers=headers, timeout=30)
        assert behind.status_code == 503 and behind.json()["error"] == "behind"
        assert behind.headers["Retry-After"] == "1"
