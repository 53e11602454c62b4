"""The scaled-out deployment as real processes, each with its own data directory: one listener
(the only one with the source of truth and the accounts), and query and command nodes that
reach it only through Kafka, Redis (when given) and its HTTP address (docs/scaling.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.app import PASSWORD, USERS, base_env, kafka_env
from tests.support.processes import ServiceProcess, run_cli
from tests.support.services import free_port


@dataclass
class NodeStack:
    listener: ServiceProcess
    queries: list[ServiceProcess]
    commands: list[ServiceProcess]
    # The environment every process shares; each node adds its own INVENTORY_DATA_DIR.
    env: dict[str, str]
    base: Path
    logs: Path

    @property
    def listener_dir(self) -> Path:
        return self.base / "listener"

    def token(self, user: str = "admin") -> dict[str, str]:
        """A bearer token from the listener, which holds the accounts; every node accepts it."""
        response = httpx.post(
            f"{self.listener.url}/api/v1/auth/login", json={"username": user, "password": PASSWORD}, timeout=10
        )
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def create_item(self, headers: dict[str, str], node: int = 0, **body: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.commands[node].url}/api/v1/inventory/items",
            json=body,
            headers={**headers, "Prefer": "wait=20"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def node_env(self, name: str) -> dict[str, str]:
        return {**self.env, "INVENTORY_DATA_DIR": str(self.base / name)}

    def add_query_node(self, *, start: bool = True) -> ServiceProcess:
        name = f"query{len(self.queries) + 1}"
        node = ServiceProcess("query", self.node_env(name), self.logs / f"{name}.log", port=free_port())
        self.queries.append(node)
        if start:
            node.start()
        return node

    def add_command_node(self, *, start: bool = True) -> ServiceProcess:
        name = f"command{len(self.commands) + 1}"
        node = ServiceProcess("command", self.node_env(name), self.logs / f"{name}.log", port=free_port())
        self.commands.append(node)
        if start:
            node.start()
        return node

    def processes(self) -> list[ServiceProcess]:
        return [self.listener, *self.commands, *self.queries]


@contextmanager
def node_stack(
    kafka_bootstrap: str,
    redis_url: str | None,
    base: Path,
    logs: Path,
    *,
    query_nodes: int = 2,
    command_nodes: int = 2,
    **extra: str,
) -> Iterator[NodeStack]:
    """A listener and the nodes asked for, started and healthy; everything stopped at the end."""
    listener_port = free_port()
    env = base_env(base / "listener", **kafka_env(kafka_bootstrap), **extra)
    if redis_url:
        env["INVENTORY_REDIS_URL"] = redis_url
    listener = ServiceProcess("listener", env, logs / "listener.log", port=listener_port)
    stack = NodeStack(
        listener=listener,
        queries=[],
        commands=[],
        env={**env, "INVENTORY_LISTENER_URL": listener.url},
        base=base,
        logs=logs,
    )
    for name, role in USERS.items():
        run_cli(env, "users", "add", name, "--role", role.value, "--password", PASSWORD)
    try:
        listener.start()
        for _ in range(command_nodes):
            stack.add_command_node()
        for _ in range(query_nodes):
            stack.add_query_node()
        yield stack
    finally:
        for process in reversed(stack.processes()):
            process.stop()
