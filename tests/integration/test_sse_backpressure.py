"""A subscriber that stops reading must not hold up the others, and gets everything once it reads
again (its lost queue is refilled from the outbox, in order, without gaps)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from pathlib import Path

import httpx

from app.eventlog.embedded import EmbeddedEventLog
from app.eventlog.topics import TOPICS
from tests.integration.test_read_side import SseCollector, wait_for
from tests.support.app import PASSWORD, base_env
from tests.support.events import adjust, create, message
from tests.support.processes import ServiceProcess, run_cli

CHANGES = 3000


def _open_stalled_stream(url: str, token: str) -> socket.socket:
    """An SSE connection whose reader reads the response head and then nothing (a frozen screen)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills up fast
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /api/v1/inventory/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 200 " in head.split(b"\r\n", 1)[0]
    return sock


def _read_sequence(sock: socket.socket, until_seq: int) -> list[int]:
    """Read the stalled stream to the end of the changes; return the event ids it delivered."""
    sock.settimeout(30)
    seqs: list[int] = []
    buffer = b""
    while not seqs or seqs[-1] < until_seq:
        chunk = sock.recv(65536)
        assert chunk, "stream closed"
        buffer += chunk
        *events, buffer = buffer.split(b"\r\n\r\n")
        for raw in events:
            fields = dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line and line[0] != ":")
            if fields.get("event") == "reset":
                seqs.append(-1)  # a reset would be an allowed answer too; record it
                seqs.append(json.loads(fields["data"])["seq"])
            elif "id" in fields:
                seqs.append(int(fields["id"]))
    return seqs


def test_a_stalled_subscriber_neither_slows_the_others_nor_misses_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = base_env(data_dir, INVENTORY_SSE_BACKLOG="100")
    run_cli(env, "users", "add", "viewer", "--role", "viewer", "--password", PASSWORD)
    service = ServiceProcess("all", env, tmp_path / "all.log").start()
    try:
        token = httpx.post(
            f"{service.url}/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD}
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        stalled = _open_stalled_stream(service.url, token)
        lively = SseCollector(f"{service.url}/api/v1/inventory/stream", headers).start()
        wait_for(lambda: lively.connections == 1)

        item_id = str(uuid.uuid4())
        events = [create(item_id, "BACKPRESSURE", quantity=1)] + [adjust(item_id, 1) for _ in range(CHANGES)]
        publish_in_batches(data_dir / "eventlog.db", events)

        # The lively client gets the final state while the stalled one still reads nothing.
        final_version = CHANGES + 1
        wait_for(lambda: any(i["version"] == final_version for i in lively.items(item_id)), timeout=120)
        lively.stop()
        last_seq = max(int(event_id) for _, event_id, _ in lively.events)

        seqs = _read_sequence(stalled, last_seq)
        stalled.close()
        metrics = httpx.get(f"{service.url}/metrics").text
        refills = next(line for line in metrics.splitlines() if line.startswith("inventory_sse_refills_total "))
    finally:
        service.stop()
    assert float(refills.split()[1]) >= 1  # it did fall behind and lose queued changes
    assert -1 not in seqs  # it was behind by far less than the replay limit: no reset needed
    first = seqs[0]
    seen = [seq for seq in seqs if seq <= last_seq]  # it may have read a little further than the lively one
    assert seen == list(range(first, last_seq + 1)), "the stalled client's events have gaps or repeats"


def publish_in_batches(eventlog: Path, events: list) -> None:  # type: ignore[type-arg]
    async def publish() -> None:
        log = EmbeddedEventLog(eventlog)
        await log.start()
        await log.ensure_topics(TOPICS)
        for start in range(0, len(events), 200):
            await log.publish([message(e) for e in events[start : start + 200]])
        await log.stop()

    thread = threading.Thread(target=lambda: asyncio.run(publish()))
    thread.start()
    thread.join(timeout=120)
