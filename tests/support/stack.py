"""The split deployment as real processes: command, listener and query roles on Kafka and Redis."""

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
class Stack:
    command: ServiceProcess
    listener: ServiceProcess
    query: ServiceProcess
    env: dict[str, str]
    data_dir: Path

    def token(self, user: str = "admin") -> dict[str, str]:
        response = httpx.post(f"{self.command.url}/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def create_item(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.command.url}/api/v1/inventory/items",
            json=body,
            headers={**headers, "Prefer": "wait=20"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def processes(self) -> list[ServiceProcess]:
        return [self.listener, self.command, self.query]


@contextmanager
def split_stack(
    kafka_bootstrap: str, redis_url: str | None, data_dir: Path, logs: Path, query_workers: int = 1, **extra: str
) -> Iterator[Stack]:
    command_port, query_port = free_port(), free_port()
    env = base_env(
        data_dir,
        **kafka_env(kafka_bootstrap),
        # Pages come from the query service and send commands to the command service (CORS).
        INVENTORY_COMMAND_BASE_URL=f"http://127.0.0.1:{command_port}",
        INVENTORY_CORS_ORIGINS=f"http://127.0.0.1:{query_port}",
        **extra,
    )
    if redis_url:
        env["INVENTORY_REDIS_URL"] = redis_url
    stack = Stack(
        command=ServiceProcess("command", env, logs / "command.log", port=command_port),
        listener=ServiceProcess("listener", env, logs / "listener.log"),
        query=ServiceProcess("query", env, logs / "query.log", port=query_port, workers=query_workers),
        env=env,
        data_dir=data_dir,
    )
    for name, role in USERS.items():
        run_cli(env, "users", "add", name, "--role", role.value, "--password", PASSWORD)
    try:
        for process in stack.processes():
            process.start()
        yield stack
    finally:
        for process in stack.processes():
            process.stop()
