"""Hot reads (app/queries/hot_reads.py) on the split deployment, its query role run as two
workers (``inventory serve --role query --workers 2``, app/ops/workers.py): a held answer is the
application's answer, never older than a change the process announced, and never given to a
token that ended; the workers share one address and one that dies is started again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.app import PASSWORD, item_body
from tests.support.processes import run_cli
from tests.support.services import RedisServer
from tests.support.stack import Stack, split_stack
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

ITEMS = "/api/v1/inventory/items"
# Set per answer, so they differ between two answers with the same content.
PER_ANSWER = {"date", "x-request-id"}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("hot-reads")
    with split_stack(kafka_bootstrap, redis_server.url, root / "data", root, query_workers=2) as running:
        yield running


def _hits(client: httpx.Client) -> float:
    """This worker's held answers used so far (one keep-alive connection stays on one worker)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('inventory_hot_reads_total{result="hit"}'):
            return float(line.split()[-1])
    return 0.0


def _headers_of(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name not in PER_ANSWER}


def test_a_held_answer_is_the_applications_answer(stack: Stack) -> None:
    auth = stack.token("viewer")
    item = stack.create_item(stack.token("manager"), **item_body(quantity=7))
    path = f"{ITEMS}/{item['id']}/stock"
    with httpx.Client(base_url=stack.query.url, headers=auth, timeout=10) as client:
        wait_until(lambda: client.get(path).status_code == 200)
        before = _hits(client)
        held = [client.get(path) for _ in range(3)]
        assert _hits(client) >= before + 2
        # Any query string takes the application's path: the same answer, byte for byte.
        direct = client.get(path, params={"min_seq": 0})
        for response in held:
            assert response.status_code == 200
            assert response.content == direct.content
            assert _headers_of(response) == _headers_of(direct)
        assert response.json()["quantity"] == 7
        # The client's request id is echoed, a fresh one made otherwise.
        assert client.get(path, headers={"X-Request-ID": "till-7.1"}).headers["x-request-id"] == "till-7.1"
        ids = {client.get(path).headers["x-request-id"] for _ in range(2)}
        assert len(ids) == 2


def test_a_change_ends_the_held_answers_it_concerns(stack: Stack) -> None:
    manager, clerk, viewer = stack.token("manager"), stack.token("clerk"), stack.token("viewer")
    item = stack.create_item(manager, **item_body(quantity=1_000))
    path = f"{ITEMS}/{item['id']}/stock"
    with (
        httpx.Client(base_url=stack.query.url, headers=viewer, timeout=10) as reads,
        httpx.Client(base_url=stack.command.url, headers=clerk, timeout=30) as writes,
    ):
        wait_until(lambda: reads.get(path).status_code == 200)
        hits = _hits(reads)
        for reserved in range(1, 21):
            reads.get(path)  # held now (or filled by this read)
            answer = writes.post(f"{ITEMS}/{item['id']}/reserve", json={"quantity": 1}, headers={"Prefer": "wait=20"})
            assert answer.status_code == 200, answer.text
            seq = answer.headers["x-inventory-seq"]
            # Read-your-writes: at least the change's sequence, served held when this worker has it.
            seen = reads.get(path, headers={"X-Min-Seq": seq}).json()
            assert seen["reserved"] == reserved
            # Without asking: the next change announced ends the held answer, so it shows up.
            wait_until(lambda n=reserved: reads.get(path).json()["reserved"] == n)  # type: ignore[misc]
        assert _hits(reads) > hits
        # The list's held answer ends with any change.
        total = reads.get(ITEMS).json()["total"]
        assert reads.get(ITEMS).json()["total"] == total  # held now
        stack.create_item(manager, **item_body())
        wait_until(lambda: reads.get(ITEMS).json()["total"] == total + 1)


def test_a_token_that_ended_gets_no_held_answer(stack: Stack) -> None:
    run_cli(stack.env, "users", "add", "short-lived", "--role", "viewer", "--password", PASSWORD)
    auth = stack.token("short-lived")
    item = stack.create_item(stack.token("manager"), **item_body())
    path = f"{ITEMS}/{item['id']}/stock"
    with httpx.Client(base_url=stack.query.url, headers=auth, timeout=10) as client:
        wait_until(lambda: client.get(path).status_code == 200)
        assert client.get(path).status_code == 200
        run_cli(stack.env, "users", "disable", "short-lived")
        refused = wait_until(lambda: (r := client.get(path)).status_code == 401 and r)
        assert refused.json()["error"] == "Unauthorized"
        listed = client.get(ITEMS)
        assert listed.status_code == 401
        bad = client.get(path, headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code == 401 and set(bad.json()) == {"error", "message", "details"}


def _workers(supervisor: int) -> list[int]:
    try:
        return [int(pid) for pid in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()]
    except OSError:
        return []


def _serves(stack: Stack) -> bool:
    try:
        return httpx.get(f"{stack.query.url}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_worker_that_dies_is_started_again_and_the_address_keeps_answering(stack: Stack) -> None:
    assert stack.query.process is not None
    supervisor = stack.query.process.pid
    workers = wait_until(lambda: len(found := _workers(supervisor)) == 2 and found)
    os.kill(workers[0], signal.SIGKILL)
    replaced = wait_until(lambda: len(found := _workers(supervisor)) == 2 and workers[0] not in found and found)
    assert workers[1] in replaced
    wait_until(lambda: _serves(stack))
    for _ in range(10):
        assert _serves(stack)


def test_stopping_the_supervisor_stops_every_worker(
    kafka_bootstrap: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    with split_stack(kafka_bootstrap, redis_server.url, tmp_path / "data", tmp_path, query_workers=2) as own:
        assert own.query.process is not None
        supervisor = own.query.process.pid
        workers = wait_until(lambda: len(found := _workers(supervisor)) == 2 and found)
        own.query.stop()
        for pid in workers:
            wait_until(lambda p=pid: not _alive(p))  # type: ignore[misc]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status
