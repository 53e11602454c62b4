"""Webhooks, dead letters and CSV imports on nodes, as real processes (docs/scaling.md): their
files are the listener's alone, and every node reaches them through the listener's calls
(app/http/internal_calls.py). An endpoint registered on a command node is the listener's (and
so delivered by its dispatcher); an import previewed on one command node is confirmed on
another and run to the end once; the dead letters a node lists are the listener's."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.bootstrap import build_event_log
from app.domain.events import STOCK_TOPIC
from app.eventlog.base import Message
from tests.support.app import settings_for
from tests.support.nodes import NodeStack, node_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka

HOOKS = "/api/v1/webhooks"
IMPORTS = "/api/v1/imports"
DEAD_LETTERS = "/api/v1/dead-letters"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeStack]:
    base = tmp_path_factory.mktemp("node-stores")
    (base / "logs").mkdir()
    with node_stack(
        kafka_bootstrap,
        None,
        base / "data",
        base / "logs",
        query_nodes=1,
        command_nodes=2,
        INVENTORY_WEBHOOKS_ALLOW_PRIVATE="1",
    ) as nodes:
        yield nodes


def test_a_webhook_registered_on_a_command_node_is_the_listeners(stack: NodeStack) -> None:
    admin = stack.token("admin")
    made = httpx.post(
        f"{stack.commands[0].url}{HOOKS}/",
        json={"url": "http://127.0.0.1:9/hook", "events": ["item.created"]},
        headers=admin,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    hook_id = made.json()["id"]
    for node in (stack.queries[0], stack.listener, stack.commands[1]):
        listed = httpx.get(f"{node.url}{HOOKS}/", headers=admin, timeout=30)
        assert listed.status_code == 200, listed.text
        assert hook_id in {hook["id"] for hook in listed.json()}, node.url
    # Only the listener's file has it: the nodes keep no webhooks.db of their own that holds it.
    with sqlite3.connect(stack.listener_dir / "webhooks.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM endpoints WHERE id = ?", (hook_id,)).fetchone() == (1,)
    for name in ("command1", "command2", "query1"):
        assert not (stack.base / name / "webhooks.db").exists()
    # A change made on the query node, refusals included, is the listener's too.
    paused = httpx.post(f"{stack.queries[0].url}{HOOKS}/{hook_id}/pause", headers=admin, timeout=30)
    assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
    assert httpx.get(f"{stack.listener.url}{HOOKS}/{hook_id}", headers=admin, timeout=30).json()["state"] == "paused"
    assert httpx.delete(f"{stack.commands[1].url}{HOOKS}/{hook_id}", headers=admin, timeout=30).status_code in (
        200,
        204,
    )
    gone = httpx.get(f"{stack.queries[0].url}{HOOKS}/{hook_id}", headers=admin, timeout=30)
    assert gone.status_code == 404


def _counts(sku: str, rows: int) -> bytes:
    """A counts file: the item counted at MAIN, then at S001 and S002... one row per location."""
    locations = ["MAIN", "S001", "S002"][:rows]
    lines = ["sku,location,counted", *(f"{sku},{loc},{10 + n}" for n, loc in enumerate(locations))]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_an_import_previewed_on_one_command_node_is_confirmed_on_another(stack: NodeStack) -> None:
    manager = stack.token("manager")
    sku = f"NODE-{uuid.uuid4().hex[:8]}"
    item = stack.create_item(manager, sku=sku, name="Counted on nodes", quantity=1)
    client = httpx.Client(timeout=60)
    uploaded = client.post(
        f"{stack.commands[0].url}{IMPORTS}",
        data={"kind": "counts"},
        files={"file": ("counts.csv", _counts(sku, 3), "text/csv")},
        headers=manager,
    )
    assert uploaded.status_code == 201, uploaded.text
    import_id = uploaded.json()["id"]
    confirmed = client.post(f"{stack.commands[1].url}{IMPORTS}/{import_id}/confirm", headers=manager)
    assert confirmed.status_code == 202, confirmed.text

    found: dict[str, Any] = {}

    def done() -> bool:
        answer = client.get(f"{stack.commands[0].url}{IMPORTS}/{import_id}", headers=manager)
        assert answer.status_code == 200, answer.text
        found.update(answer.json())
        return bool(found["state"] == "done")

    wait_until(done, timeout=120, interval=0.3)
    assert (found["applied"], found["rejected"]) == (3, 0), found
    # Every row applied once: one count per row in the listener's history, whoever submitted it.
    with sqlite3.connect(stack.listener_dir / "inventory.db") as conn:
        counted = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT command_id) FROM history WHERE item_id = ? AND event_type LIKE '%count%'",
            (item["id"],),
        ).fetchone()
        levels = dict(
            conn.execute("SELECT location, quantity FROM stock_levels WHERE item_id = ?", (item["id"],)).fetchall()
        )
    assert counted == (3, 3)
    assert levels == {"MAIN": 10, "S001": 11, "S002": 12}
    # The imports file is the listener's alone; the report from the other node says the same.
    assert (stack.listener_dir / "imports.db").exists()
    for name in ("command1", "command2", "query1"):
        assert not (stack.base / name / "imports.db").exists()
    report = client.get(f"{stack.commands[1].url}{IMPORTS}/{import_id}/report.csv", headers=manager)
    assert report.status_code == 200, report.text
    assert [line["status"] for line in csv.DictReader(io.StringIO(report.text))] == ["applied"] * 3
    # The query node's pages see it.
    page = client.get(f"{stack.queries[0].url}/imports/{import_id}", headers=manager)
    assert page.status_code == 200, page.text
    assert "counts.csv" in page.text
    listing = client.get(f"{stack.queries[0].url}/imports", headers=manager)
    assert listing.status_code == 200 and import_id in listing.text


def _poison(stack: NodeStack) -> None:
    settings = settings_for(stack.listener.env)

    async def publish() -> None:
        log = build_event_log(settings, client_id="test-poison")
        await log.start()
        try:
            key = str(uuid.uuid4()).encode()
            await log.publish([Message(STOCK_TOPIC, key, b"\x00not json at all", (("event-type", b"?"),))])
        finally:
            await log.stop()

    asyncio.run(publish())


def test_dead_letters_on_a_node_are_the_listeners(stack: NodeStack) -> None:
    admin = stack.token("admin")

    def letters(url: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{url}{DEAD_LETTERS}", headers=admin, timeout=30)
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    before = len(letters(stack.listener.url))
    _poison(stack)
    wait_until(lambda: len(letters(stack.listener.url)) > before, timeout=60)
    on_listener = letters(stack.listener.url)
    assert on_listener[0]["value_base64"] == "AG5vdCBqc29uIGF0IGFsbA=="  # the original bytes
    for node in (*stack.commands, *stack.queries):
        assert letters(node.url) == on_listener, node.url
    # Replaying one from a node looks it up on the listener (an unknown one is a 404 there too).
    missing = httpx.post(f"{stack.commands[0].url}{DEAD_LETTERS}/999999/replay", headers=admin, timeout=30)
    assert missing.status_code == 404, missing.text
    replayed = httpx.post(
        f"{stack.commands[1].url}{DEAD_LETTERS}/{on_listener[0]['id']}/replay", headers=admin, timeout=30
    )
    assert replayed.status_code == 202, replayed.text
