"""``inventory dev``: the whole distributed stack on this machine, in one command.

Kafka from the project's kafka/ scripts, Redis if it is installed, and the command, query and
listener roles as separate processes. Ctrl-C (or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BROKER = REPO / "kafka" / "broker.sh"
DEMO_LOCATIONS = "MAIN,S001,S002,S003,S004,S005"
LOG_LINES_ON_FAILURE = 15


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@dataclass
class DevStack:
    data_dir: Path
    kafka_port: int = 9092
    redis_port: int = 6379
    ports: dict[str, int] = field(default_factory=lambda: {"command": 8080, "query": 8081, "listener": 8082})
    say: Callable[[str], None] = print
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _kafka_started: bool = False

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "INVENTORY_DATA_DIR": str(self.data_dir),
            "INVENTORY_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka_port}",
            "INVENTORY_COMMAND_BASE_URL": f"http://127.0.0.1:{self.ports['command']}",
            "INVENTORY_CORS_ORIGINS": f"http://127.0.0.1:{self.ports['query']}",
        }
        env.setdefault("INVENTORY_LOCATIONS", DEMO_LOCATIONS)
        if "redis" in self._processes:
            env["INVENTORY_REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
        return env

    def _kafka_env(self) -> dict[str, str]:
        return {**os.environ, "KAFKA_PORT": str(self.kafka_port), "KAFKA_DATA_DIR": str(self.data_dir / "kafka")}

    def start(self) -> None:
        if not BROKER.exists():
            raise RuntimeError("inventory dev runs from a checkout of the project (kafka/broker.sh is missing)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.say(f"starting Kafka on 127.0.0.1:{self.kafka_port} (first start fetches it from Maven Central)...")
        subprocess.run(["bash", str(BROKER), "start"], env=self._kafka_env(), check=True, stdout=subprocess.DEVNULL)
        self._kafka_started = True
        self._start_redis()
        for role in ("listener", "command", "query"):
            self._start_role(role)
        for role in ("listener", "command", "query"):
            self._wait_healthy(role)

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            self.say("redis-server is not installed: each role uses an in-process cache instead")
            return
        if not port_free(self.redis_port):
            self.say(f"port {self.redis_port} is taken: running without Redis")
            return
        self._processes["redis"] = subprocess.Popen(
            [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _start_role(self, role: str) -> None:
        log = (self.data_dir / f"{role}.log").open("ab")
        self._processes[role] = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--role", role, "--port", str(self.ports[role])],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_healthy(self, role: str, timeout: float = 120) -> None:
        url = f"http://127.0.0.1:{self.ports[role]}/api/v1/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self._processes[role]
            if process.poll() is not None:
                raise RuntimeError(self._role_failed(role, f"exited with {process.returncode}"))
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(self._role_failed(role, f"did not become healthy in {timeout:.0f} s"))

    def _role_failed(self, role: str, what: str) -> str:
        """Name the failure and quote the end of the role's log: the reason is usually there."""
        log = self.data_dir / f"{role}.log"
        tail = log.read_text(errors="replace").splitlines()[-LOG_LINES_ON_FAILURE:] if log.exists() else []
        return "\n".join([f"{role} {what}; its log is {log}, ending:", *("  " + line for line in tail)])

    def ensure_admin(self) -> str | None:
        """A first admin for a fresh data directory; returns its password (None if users exist)."""
        env = self.env()
        listing = subprocess.run(
            [sys.executable, "-m", "app.cli", "users", "list"], env=env, capture_output=True, text=True, check=True
        )
        if listing.stdout.strip():
            return None
        password = os.environ.get("INVENTORY_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "users", "add", "admin", "--role", "admin", "--password", password],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return password

    def stop(self) -> None:
        for name in ("query", "command", "listener", "redis"):
            process = self._processes.pop(name, None)
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._kafka_started:
            subprocess.run(["bash", str(BROKER), "stop"], env=self._kafka_env(), check=False, stdout=subprocess.DEVNULL)
            self._kafka_started = False

    def run_until_signalled(self) -> None:
        stopping = False

        def request_stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        while not stopping:
            for role, process in list(self._processes.items()):
                if process.poll() is not None:
                    self.say(f"{role} exited with {process.returncode}; stopping the stack")
                    return
            time.sleep(0.5)
