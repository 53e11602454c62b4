"""``inventory dev --query-nodes 2 --command-nodes 2``: the scaled-out stack on one machine.

The listener with the accounts in the main data directory, and each node with a directory of its
own; the query nodes behind one address and the command nodes behind another (SO_REUSEPORT),
each node also on a port of its own; SIGTERM stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from app.ops.devstack import COMMAND_NODE_OFFSET, QUERY_NODE_OFFSET
from tests.support.app import PASSWORD
from tests.support.services import REPO, free_ports_in_a_row, port_is_open


def _wait(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def listening_sockets(port: int) -> int:
    """How many sockets listen on this local TCP port (one per process sharing it)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found += 1
    return found


def test_inventory_dev_runs_nodes_behind_one_address_per_service(tmp_path: Path) -> None:
    first = free_ports_in_a_row(30)
    kafka_port, base, redis_port = first, first + 3, first + 28
    command, query, listener = base, base + 1, base + 2
    query_nodes = [query + QUERY_NODE_OFFSET + n for n in (1, 2)]
    command_nodes = [command + COMMAND_NODE_OFFSET + n for n in (1, 2)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    env |= {"INVENTORY_ADMIN_PASSWORD": PASSWORD}
    data = tmp_path / "dev"
    log = tmp_path / "dev.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "dev", "--data-dir", str(data), "--kafka-port", str(kafka_port),
             "--redis-port", str(redis_port), "--port-base", str(base), "--query-nodes", "2", "--command-nodes", "2"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        _wait(lambda: "Ctrl-C stops everything" in log.read_text() or process.poll() is not None, 300)
        text = log.read_text()
        assert process.poll() is None, text
        assert "(2 nodes)" in text and "user admin" in text
        for port in (*query_nodes, *command_nodes):
            assert f"http://127.0.0.1:{port}/" in text, text
        # Two processes behind each shared address, each node on its own port too.
        assert listening_sockets(query) == 2 and listening_sockets(command) == 2
        assert all(listening_sockets(port) == 1 for port in (*query_nodes, *command_nodes))
        # The accounts and the source of truth stay in the listener's directory; every node has its own.
        assert (data / "users.db").exists() and (data / "inventory.db").exists()
        for name in ("query1", "query2", "command1", "command2"):
            assert (data / "nodes" / name / "replica.db").exists(), name
            assert not (data / "nodes" / name / "inventory.db").exists(), name

        # Each shared address answers, on new connections (spread over its processes by the kernel).
        for port in (query, query, command, command):
            with httpx.Client(timeout=10) as client:
                assert client.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200
        # The accounts are the listener's: it logs the first admin in.
        login = httpx.post(f"http://127.0.0.1:{listener}/api/v1/auth/login",
                           json={"username": "admin", "password": PASSWORD}, timeout=10)  # fmt: skip
        assert login.status_code == 200, login.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    for port in (command, query, listener, *query_nodes, *command_nodes, kafka_port, redis_port):
        assert not port_is_open(port), port
