"""Operations commands and endpoints: topics, dead letters, rebuild, demo data, the local stack."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.domain.events import STOCK_TOPIC
from app.eventlog.base import Message
from app.eventlog.topics import TOPICS
from tests.support.app import PASSWORD, base_env
from tests.support.events import query
from tests.support.processes import ServiceProcess, run_cli
from tests.support.services import REPO, free_port_pair, free_ports_in_a_row, port_is_open
from tests.support.stack import Stack, split_stack


@pytest.fixture
def stack(kafka_bootstrap: str, data_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    with split_stack(kafka_bootstrap, None, data_dir, tmp_path) as running:
        yield running


def test_topics_are_created_and_described(stack: Stack) -> None:
    described = run_cli(stack.env, "topics", "describe").stdout
    for spec in TOPICS:
        assert f"{spec.name}\tpartitions={spec.partitions}" in described
    assert "inventory.items\tpartitions=3\tretention=forever" in described
    assert (
        "topics ready: inventory.items, inventory.stock, inventory.dlq, inventory.changes"
        in run_cli(stack.env, "topics", "create").stdout
    )


def test_dead_letters_are_listed_and_replayed_from_the_cli_and_the_api(stack: Stack) -> None:
    admin = stack.token()
    poison = b'{"this is": "not an event"}'

    async def publish() -> None:
        log = __import__("app.eventlog.kafka", fromlist=["KafkaEventLog"]).KafkaEventLog(
            stack.env["INVENTORY_KAFKA_BOOTSTRAP"],
            client_id="t",
            topic_prefix=stack.env["INVENTORY_KAFKA_TOPIC_PREFIX"],
        )
        await log.start()
        await log.publish([Message(STOCK_TOPIC, b"k", poison, (("event-type", b"bogus"),))])
        await log.stop()

    import asyncio

    asyncio.run(publish())
    db = stack.data_dir / "inventory.db"
    _wait(lambda: query(db, "SELECT COUNT(*) FROM dead_letters")[0][0] == 1)
    listing = run_cli(stack.env, "dlq", "list").stdout
    assert "inventory.stock[" in listing and "invalid envelope" in listing and "not replayed" in listing
    api = httpx.get(f"{stack.listener.url}/api/v1/dead-letters", headers=admin).json()
    assert len(api) == 1 and api[0]["error"].startswith("invalid envelope")
    assert httpx.get(f"{stack.listener.url}/api/v1/dead-letters", headers=stack.token("manager")).status_code == 403

    replayed = httpx.post(f"{stack.command.url}/api/v1/dead-letters/{api[0]['id']}/replay", headers=admin)
    assert replayed.status_code == 202 and replayed.json()["status"] == "replayed"
    # Still poison: it comes back as a new dead letter, and the first one is marked replayed.
    _wait(lambda: query(db, "SELECT COUNT(*) FROM dead_letters")[0][0] == 2)
    _wait(lambda: query(db, "SELECT replayed_at IS NOT NULL FROM dead_letters WHERE id = 1") == [(1,)])
    run_cli(stack.env, "dlq", "replay", "2")
    _wait(lambda: query(db, "SELECT COUNT(*) FROM dead_letters")[0][0] == 3)
    assert httpx.post(f"{stack.command.url}/api/v1/dead-letters/999/replay", headers=admin).status_code == 404


def _wait(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_rebuild_replays_the_topics_and_reports_equality_then_repairs(stack: Stack) -> None:
    admin = stack.token()
    items = [stack.create_item(admin, sku=f"RB-{n}", name="Rebuild", quantity=10) for n in range(5)]
    for item in items:
        httpx.post(f"{stack.command.url}/api/v1/inventory/items/{item['id']}/reserve", json={"quantity": 3},
                   headers={**admin, "Prefer": "wait=20"})  # fmt: skip
    stack.listener.stop()
    same = run_cli(stack.env, "rebuild")
    assert "equals the current state" in same.stdout
    db = stack.data_dir / "inventory.db"
    with sqlite3.connect(db) as conn:  # damage the source of truth behind everyone's back
        conn.execute("UPDATE stock_levels SET quantity = 999 WHERE item_id = ?", (items[0]["id"],))
    with pytest.raises(RuntimeError, match="differs") as differs:
        run_cli(stack.env, "rebuild")
    assert "999" in str(differs.value)
    applied = run_cli(stack.env, "rebuild", "--apply")
    assert "applied" in applied.stdout
    assert query(db, "SELECT quantity, reserved FROM stock_levels WHERE item_id = ?", (items[0]["id"],)) == [(10, 3)]
    stack.listener.start()
    stock = httpx.get(f"{stack.query.url}/api/v1/inventory/items/{items[0]['id']}/stock", headers=admin).json()
    assert (stock["quantity"], stock["reserved"]) == (10, 3)


def test_demo_data_stocks_five_stores_with_some_low(stack: Stack) -> None:
    env = {**stack.env, "INVENTORY_LOCATIONS": "MAIN,S001,S002,S003,S004,S005"}
    out = run_cli(env, "demo", "--items", "200").stdout
    assert "200 items at MAIN" in out and "S005" in out
    db = stack.data_dir / "inventory.db"
    # Every command decided (the deliveries travel on another topic than the creates, so the
    # items being there says nothing about the stores yet).
    told = re.search(r"published (\d+) commands", out)
    assert told is not None, out
    published = int(told.group(1))
    _wait(lambda: query(db, "SELECT COUNT(*) FROM command_outcomes")[0][0] >= published, timeout=120)
    assert query(db, "SELECT COUNT(*) FROM items")[0][0] == 200
    assert query(db, "SELECT COUNT(*) FROM parked_events") == [(0,)]
    stores = {row[0] for row in query(db, "SELECT DISTINCT location FROM stock_levels")}
    assert stores == {"MAIN", "S001", "S002", "S003", "S004", "S005"}
    low = query(db, "SELECT COUNT(*) FROM stock_levels WHERE location != 'MAIN' AND quantity - reserved <= 5")[0][0]
    assert 0 < low < 600
    assert query(db, "SELECT COUNT(*) FROM command_outcomes WHERE status = 'rejected'") == [(0,)]


def _start_dev(tmp_path: Path, **settings: str) -> tuple[subprocess.Popen[str], int, int, int]:
    """`inventory dev` on ports of its own: Kafka (and its controller), three roles, Redis."""
    first = free_ports_in_a_row(6)
    kafka_port, base, redis_port = first, first + 2, first + 5
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    env |= {"INVENTORY_ADMIN_PASSWORD": PASSWORD, **settings}
    out = (tmp_path / "dev.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "dev", "--data-dir", str(tmp_path / "dev"), "--kafka-port", str(kafka_port),
         "--redis-port", str(redis_port), "--port-base", str(base)],
        cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    _wait(lambda: "Ctrl-C stops everything" in (tmp_path / "dev.log").read_text() or process.poll() is not None, 300)
    return process, kafka_port, base, redis_port


def test_inventory_dev_runs_the_whole_stack_and_stops_it_on_sigterm(tmp_path: Path) -> None:
    process, kafka_port, base, redis_port = _start_dev(tmp_path)
    try:
        text = (tmp_path / "dev.log").read_text()
        assert process.poll() is None, text
        assert f"http://127.0.0.1:{base + 1}/" in text and "user admin" in text
        for port in (base, base + 1, base + 2):
            ready = httpx.get(f"http://127.0.0.1:{port}/api/v1/ready").json()
            assert ready["status"] == "ok", ready
            assert ready["checks"]["kafka"]["status"] == "ok" and ready["checks"]["redis"]["status"] == "ok"
        token = httpx.post(
            f"http://127.0.0.1:{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        )
        assert token.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
    for port in (base, base + 1, base + 2, kafka_port, redis_port):
        assert not port_is_open(port), port


def test_inventory_dev_quotes_the_log_of_a_role_that_cannot_start(tmp_path: Path) -> None:
    process, kafka_port, base, _ = _start_dev(tmp_path, INVENTORY_CACHE_TTL="lots")
    assert process.wait(timeout=90) == 1
    text = (tmp_path / "dev.log").read_text()
    assert "listener exited with 2; its log is" in text, text
    assert "INVENTORY_CACHE_TTL" in text, text
    assert not port_is_open(kafka_port) and not port_is_open(base)


def test_every_role_exposes_the_documented_metrics(stack: Stack) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="MET-1", name="Metrics", quantity=1)
    httpx.post(f"{stack.command.url}/api/v1/inventory/items/{item['id']}/reserve", json={"quantity": 5},
               headers={**admin, "Prefer": "wait=20"})  # fmt: skip
    # Reads at a location are cache-first (a full item's levels come from SQLite).
    httpx.get(f"{stack.query.url}/api/v1/inventory/items/{item['id']}?location=MAIN", headers=admin)
    command = httpx.get(f"{stack.command.url}/metrics").text
    listener = httpx.get(f"{stack.listener.url}/metrics").text
    queries = httpx.get(f"{stack.query.url}/metrics").text
    assert 'inventory_commands_accepted_total{type="inventory.items.created"} 1.0' in command
    rejected = 'reason="insufficient_stock",status="rejected",type="inventory.stock.reserved"'
    assert f"inventory_command_outcomes_total{{{rejected}}} 1.0" in listener
    for name in ("inventory_events_applied_total", "inventory_dead_letters_total", "inventory_consumer_lag",
                 "inventory_apply_batch_seconds_bucket", "inventory_outbox_backlog"):  # fmt: skip
        assert name in listener, name
    assert 'inventory_cache_lookups_total{result="hit"} 1.0' in queries and "inventory_sse_clients" in queries


def test_logs_are_json_lines_carrying_request_and_command_ids(data_dir: Path, tmp_path: Path) -> None:
    env = base_env(data_dir, INVENTORY_LOG_LEVEL="DEBUG")
    run_cli(env, "users", "add", "admin", "--role", "admin", "--password", PASSWORD)
    service = ServiceProcess("all", env, tmp_path / "all.log").start()
    try:
        token = httpx.post(f"{service.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['token']}", "X-Request-ID": "trace-logs-1"}
        accepted = httpx.post(
            f"{service.url}/api/v1/inventory/items", json={"sku": "LOG-1", "name": "x"}, headers=headers
        )
        assert accepted.status_code == 202
    finally:
        service.stop()
    lines = [json.loads(line) for line in service.log_path.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "role", "message"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("request_id") == "trace-logs-1"]
    assert any(line.get("command_id") == accepted.json()["command_id"] for line in mine), mine


def test_the_listener_survives_a_locked_database_and_catches_up(stack: Stack) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="LOCK-1", name="Locked", quantity=100)
    db = stack.data_dir / "inventory.db"
    blocker = sqlite3.connect(db, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the database is away for the listener
    try:
        for _ in range(5):
            accepted = httpx.post(f"{stack.command.url}/api/v1/inventory/items/{item['id']}/reserve",
                                  json={"quantity": 1}, headers=admin)  # fmt: skip
            assert accepted.status_code == 202

        def ready_says_down() -> bool:
            ready = httpx.get(f"{stack.listener.url}/api/v1/ready")
            return ready.status_code == 503 and ready.json()["checks"]["listener"]["status"] == "down"

        _wait(ready_says_down, timeout=60)
        assert stack.listener.process is not None and stack.listener.process.poll() is None  # still running
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _wait(lambda: query(db, "SELECT reserved FROM stock_levels WHERE item_id = ?", (item["id"],)) == [(5,)], 60)
    _wait(lambda: httpx.get(f"{stack.listener.url}/api/v1/ready").status_code == 200, 30)


def test_the_listener_waits_out_a_kafka_outage(tmp_path: Path, data_dir: Path) -> None:
    from tests.support.services import KafkaBroker

    broker = KafkaBroker(free_port_pair(), tmp_path / "kafka")
    broker.start()
    try:
        with split_stack(broker.bootstrap, None, data_dir, tmp_path) as own:
            admin = own.token()
            item = own.create_item(admin, sku="OUT-1", name="Outage", quantity=10)
            broker.stop()
            _wait(lambda: httpx.get(f"{own.listener.url}/api/v1/ready").status_code == 503, 60)
            broker.start()
            _wait(lambda: httpx.get(f"{own.listener.url}/api/v1/ready").status_code == 200, 120)
            reserved = httpx.post(
                f"{own.command.url}/api/v1/inventory/items/{item['id']}/reserve",
                json={"quantity": 2},
                headers={**admin, "Prefer": "wait=30"},
                timeout=40,
            )
            assert reserved.status_code == 200 and reserved.json()["reserved"] == 2
            for process in own.processes():
                assert process.process is not None and process.process.poll() is None
    finally:
        broker.stop()
