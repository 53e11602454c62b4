"""The split deployment on the real broker and Redis: reads, the cache, the change feed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.services import RedisServer
from tests.support.sse import SseCollector
from tests.support.stack import Stack, split_stack

ITEMS = "/api/v1/inventory/items"


@pytest.fixture
def stack(kafka_bootstrap: str, redis_server: RedisServer, data_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    with split_stack(kafka_bootstrap, redis_server.url, data_dir, tmp_path) as running:
        yield running


def wait_for(check, timeout: float = 30.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_reads_come_from_the_query_service_with_versions(stack: Stack) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="READ-1", name="Blue mug", quantity=12)
    q = stack.query.url
    by_id = httpx.get(f"{q}{ITEMS}/{item['id']}", headers=admin).json()
    by_sku = httpx.get(f"{q}{ITEMS}/sku/READ-1", headers=admin).json()
    stock = httpx.get(f"{q}{ITEMS}/{item['id']}/stock", headers=admin).json()
    assert by_id == by_sku and by_id["version"] == 1 and stock["available"] == 12
    listing = httpx.get(f"{q}{ITEMS}", params={"q": "blue", "sort": "-quantity"}, headers=admin).json()
    assert [i["sku"] for i in listing["items"]] == ["READ-1"] and listing["total"] == 1
    history = httpx.get(f"{q}{ITEMS}/{item['id']}/history", headers=admin).json()
    assert [e["type"] for e in history["entries"]] == ["inventory.items.created"]


def test_bad_query_parameters_are_clamped_or_400_never_500(stack: Stack) -> None:
    admin = stack.token()
    for n in range(3):
        stack.create_item(admin, sku=f"Q-{n}", name=f"Item {n}", quantity=n)
    q = f"{stack.query.url}{ITEMS}"
    clamped = httpx.get(q, params={"page": -1, "page_size": 10000}, headers=admin).json()
    assert clamped["page"] == 1 and clamped["page_size"] == 100 and clamped["total"] == 3
    for hostile in ["' OR 1=1 --", "%", "_", "\\", "Q-0'; DROP TABLE items; --"]:
        response = httpx.get(q, params={"q": hostile}, headers=admin)
        assert response.status_code == 200
        assert response.json()["total"] == 0  # metacharacters match literally, nothing leaks
    assert httpx.get(q, params={"q": "Q-"}, headers=admin).json()["total"] == 3
    for params in ({"sort": "price; DROP"}, {"page": "abc"}, {"location": "MARS"}, {"q": "x" * 500}):
        response = httpx.get(q, params=params, headers=admin)
        assert response.status_code == 400 and response.json()["error"] == "ValidationError", params
    assert httpx.get(f"{q}/not-a-uuid", headers=admin).status_code == 400
    assert len(httpx.get(q, headers=admin).json()["items"]) == 3  # the table is still there


def test_a_deleted_item_is_404_on_every_read_path_at_once(stack: Stack) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="GONE-1", name="Ghost", quantity=1)
    q = stack.query.url
    paths = [f"{ITEMS}/{item['id']}", f"{ITEMS}/sku/GONE-1", f"{ITEMS}/{item['id']}/stock", f"{ITEMS}/sku/GONE-1/stock"]
    for path in paths:  # warm the cache on every path
        assert httpx.get(f"{q}{path}", headers=admin).status_code == 200
    deleted = httpx.delete(f"{stack.command.url}{ITEMS}/{item['id']}", headers={**admin, "Prefer": "wait=20"})
    assert deleted.status_code == 200
    for path in paths:
        assert httpx.get(f"{q}{path}", headers=admin).status_code == 404, path
    assert httpx.get(f"{q}{ITEMS}", params={"q": "GONE"}, headers=admin).json()["total"] == 0


def test_redis_away_means_sqlite_answers_and_ready_says_degraded(stack: Stack, redis_server: RedisServer) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="REDIS-1", name="Cached", quantity=10)
    q = stack.query.url
    assert httpx.get(f"{q}{ITEMS}/{item['id']}", headers=admin).json()["version"] == 1
    redis_server.stop()
    try:
        reserve = httpx.post(
            f"{stack.command.url}{ITEMS}/{item['id']}/reserve",
            json={"quantity": 3},
            headers={**admin, "Prefer": "wait=20"},
            timeout=30,
        )
        assert reserve.status_code == 200
        for path in (f"{ITEMS}/{item['id']}", f"{ITEMS}/sku/REDIS-1", f"{ITEMS}/{item['id']}/stock", ITEMS):
            response = httpx.get(f"{q}{path}", headers=admin)
            assert response.status_code == 200, path
        assert httpx.get(f"{q}{ITEMS}/{item['id']}", headers=admin).json()["reserved"] == 3
        ready = httpx.get(f"{q}/api/v1/ready").json()
        assert ready["status"] == "degraded" and ready["checks"]["redis"]["status"] == "degraded"
    finally:
        redis_server.start()
    # Redis is back (empty): the listener refreshes it, and nothing older than SQLite is served.
    wait_for(lambda: httpx.get(f"{q}/api/v1/ready").json()["checks"]["redis"]["status"] == "ok")
    wait_for(lambda: httpx.get(f"{stack.listener.url}/api/v1/ready").json()["checks"]["redis"]["status"] == "ok")
    import redis as redis_client

    cached = redis_client.Redis.from_url(redis_server.url)
    wait_for(lambda: cached.hget(f"inv:item:{item['id']}", "v") == b"2")
    assert httpx.get(f"{q}{ITEMS}/{item['id']}", headers=admin).json()["version"] == 2


def test_sse_clients_get_changes_and_outcomes_in_sequence(stack: Stack) -> None:
    admin = stack.token()
    collector = SseCollector(f"{stack.query.url}/api/v1/inventory/stream", admin).start()
    try:
        wait_for(lambda: collector.connections > 0)
        time.sleep(0.3)  # the subscription is set up right after the headers
        item = stack.create_item(admin, sku="SSE-1", name="Live", quantity=5)
        httpx.post(f"{stack.command.url}{ITEMS}/{item['id']}/reserve", json={"quantity": 2}, headers=admin)
        wait_for(lambda: any(i["item"] and i["item"]["reserved"] == 2 for i in collector.items(item["id"])))
        wait_for(lambda: sum(1 for e in collector.events if e[0] == "outcome") >= 2)
    finally:
        collector.stop()
    ids = [int(event_id) for _, event_id, _ in collector.events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert all(data["seq"] == int(event_id) for _, event_id, data in collector.events)


def test_sse_clients_resume_across_a_query_service_restart_without_gaps_or_repeats(stack: Stack) -> None:
    admin = stack.token()
    item = stack.create_item(admin, sku="RESUME-1", name="Resume", quantity=100)
    collector = SseCollector(f"{stack.query.url}/api/v1/inventory/stream", admin).start()
    try:
        wait_for(lambda: collector.connections > 0)
        time.sleep(0.3)
        reserve = f"{stack.command.url}{ITEMS}/{item['id']}/reserve"
        httpx.post(reserve, json={"quantity": 1}, headers={**admin, "Prefer": "wait=20"})
        wait_for(lambda: len(collector.items(item["id"])) >= 1)
        stack.query.stop()
        for _ in range(5):  # changes while the query service is down
            httpx.post(reserve, json={"quantity": 1}, headers={**admin, "Prefer": "wait=20"})
        stack.query.start()
        httpx.post(reserve, json={"quantity": 1}, headers={**admin, "Prefer": "wait=20"})
        wait_for(lambda: any(i["item"]["reserved"] == 7 for i in collector.items(item["id"])))
    finally:
        collector.stop()
    assert collector.connections >= 2
    seqs = [int(event_id) for _, event_id, _ in collector.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # consecutive: nothing missed, nothing twice
    reserved = [i["item"]["reserved"] for i in collector.items(item["id"])]
    assert reserved == sorted(reserved) and reserved[-1] == 7


def test_a_listener_killed_after_commit_publishes_on_restart_and_sse_gets_it(stack: Stack) -> None:
    from tests.support.events import query as db_query

    admin = stack.token()
    item = stack.create_item(admin, sku="KILL-1", name="Crash", quantity=10)
    collector = SseCollector(f"{stack.query.url}/api/v1/inventory/stream", admin).start()
    try:
        wait_for(lambda: collector.connections > 0)
        time.sleep(0.3)
        db = stack.data_dir / "inventory.db"
        # Stop the relay's world: kill the listener, commit a change behind its back is not
        # possible (it is the only writer), so kill it right after it commits a batch instead.
        httpx.post(f"{stack.command.url}{ITEMS}/{item['id']}/reserve", json={"quantity": 4}, headers=admin)
        wait_for(lambda: db_query(db, "SELECT COUNT(*) FROM changes")[0][0] >= 4, interval=0.001)
        stack.listener.kill()
        stack.listener.start()
        wait_for(lambda: any(i["item"]["reserved"] == 4 for i in collector.items(item["id"])))
        # The SSE client may have had it before the kill (published, not yet marked sent): the
        # restarted relay publishes it again and then records that everything went out.
        wait_for(
            lambda: (
                db_query(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'published_seq'")
                == db_query(db, "SELECT MAX(seq) FROM changes")
            )
        )
    finally:
        collector.stop()


def test_every_role_reports_readiness(stack: Stack) -> None:
    for process in stack.processes():
        ready = httpx.get(f"{process.url}/api/v1/ready")
        assert ready.status_code == 200, (process.role, ready.text)
        assert ready.json()["checks"]["kafka"]["status"] == "ok"
        metrics = httpx.get(f"{process.url}/metrics").text
        assert "inventory_commands_accepted_total" in metrics
    head = httpx.head(f"{stack.query.url}/api/v1/health", headers={"X-Request-ID": "head-1"})
    assert head.status_code == 200 and head.content == b"" and head.headers["X-Request-ID"] == "head-1"


def test_read_your_writes_under_load(stack: Stack) -> None:
    """What Prefer: wait answers, what the status resource says and what GET shows agree."""
    import asyncio

    admin = stack.token()
    items = [stack.create_item(admin, sku=f"RYW-{n}", name="Read your writes", quantity=1000) for n in range(8)]

    async def client(n: int, http: httpx.AsyncClient) -> list[str]:
        problems: list[str] = []
        item_id = items[n % len(items)]["id"]
        for step in range(15):
            waited = await http.post(
                f"{stack.command.url}{ITEMS}/{item_id}/reserve",
                json={"quantity": 1},
                headers={**admin, "Prefer": "wait=20"},
            )
            if waited.status_code != 200:
                problems.append(f"wait gave {waited.status_code}")
                continue
            version = waited.json()["version"]
            seen = (await http.get(f"{stack.query.url}{ITEMS}/{item_id}", headers=admin)).json()["version"]
            if seen < version:
                problems.append(f"GET after Prefer: wait saw {seen} < {version}")
            accepted = await http.post(
                f"{stack.command.url}{ITEMS}/{item_id}/release", json={"quantity": 1}, headers=admin
            )
            status_url = accepted.json()["status_url"]
            while True:
                status = (await http.get(f"{stack.query.url}{status_url}", headers=admin)).json()
                if status["status"] != "pending":
                    break
                await asyncio.sleep(0.01)
            seen = (await http.get(f"{stack.query.url}{ITEMS}/{item_id}", headers=admin)).json()["version"]
            if seen < status["version"]:
                problems.append(f"GET after status applied saw {seen} < {status['version']} (step {step})")
        return problems

    async def run() -> list[str]:
        async with httpx.AsyncClient(timeout=30) as http:
            results = await asyncio.gather(*(client(n, http) for n in range(24)))
        return [p for problems in results for p in problems]

    assert asyncio.run(run()) == []


def test_inventory_users_and_cli_errors(stack: Stack) -> None:
    from tests.support.processes import run_cli

    listing = run_cli(stack.env, "users", "list").stdout
    assert "admin\tadmin" in listing and "viewer\tviewer" in listing
    with pytest.raises(RuntimeError, match="already exists"):
        run_cli(stack.env, "users", "add", "admin", "--role", "admin", "--password", "another-password")
    with pytest.raises(RuntimeError, match="at least 8"):
        run_cli(stack.env, "users", "add", "shorty", "--role", "viewer", "--password", "short")
    with pytest.raises(RuntimeError, match="INVENTORY_CACHE_TTL"):
        run_cli({**stack.env, "INVENTORY_CACHE_TTL": "soon"}, "users", "list")
