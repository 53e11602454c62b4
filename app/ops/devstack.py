"""``inventory dev``: the whole distributed stack on this machine, in one command.

Kafka from the project's kafka/ scripts, Redis if it is installed, and the command, query and
listener roles as separate processes. Ctrl-C (or SIGTERM) stops everything it started.

With ``--query-nodes N`` or ``--command-nodes M`` above 1 the query and command roles run as
*nodes* (docs/scaling.md): each with a data directory of its own and ``INVENTORY_LISTENER_URL``,
so none of them opens the listener's files. The N query nodes share one address and the M
command nodes another (SO_REUSEPORT: the kernel spreads new connections over the processes),
and each node also listens on a port of its own, to reach one node directly.
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

from app.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]
BROKER = REPO / "kafka" / "broker.sh"
DEMO_LOCATIONS = "MAIN,S001,S002,S003,S004,S005"
LOG_LINES_ON_FAILURE = 15
# A node's own port is the shared port of its service plus this offset plus its number:
# with the default base 8080, query nodes on 8091, 8092, ... and command nodes on 8101, ...
QUERY_NODE_OFFSET = 10
COMMAND_NODE_OFFSET = 20
# Pending connections per listening socket (uvicorn's default); with SO_REUSEPORT each process
# has a queue of its own.
BACKLOG = 2048


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def listening_socket(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A bound TCP socket for uvicorn to serve on. ``shared`` sets SO_REUSEPORT: every process of
    the same user that binds the same address with it gets its own accept queue, and the kernel
    hashes each new connection to one of them (a process that stops takes only its queue along)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise OSError("this system has no SO_REUSEPORT: put a proxy in front of the processes instead")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class Node:
    """One query or command process of a scaled-out dev stack."""

    name: str  # query1, command2, ...
    role: str
    port: int  # its own
    shared_port: int  # its service's address, shared with the other nodes of the role


@dataclass
class DevStack:
    data_dir: Path
    kafka_port: int = 9092
    redis_port: int = 6379
    ports: dict[str, int] = field(default_factory=lambda: {"command": 8080, "query": 8081, "listener": 8082})
    say: Callable[[str], None] = print
    query_nodes: int = 1
    command_nodes: int = 1
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _kafka_started: bool = False
    _admin_checked: bool = False
    _admin_password: str | None = None
    # Node mode: the token secret every process shares (a node cannot read the listener's file).
    _jwt_secret: str = ""

    @property
    def scaled(self) -> bool:
        """More than one query or command process: the roles run as nodes with their own data."""
        return self.query_nodes > 1 or self.command_nodes > 1

    def nodes(self) -> list[Node]:
        found = [
            Node(f"query{n}", "query", self.ports["query"] + QUERY_NODE_OFFSET + n, self.ports["query"])
            for n in range(1, self.query_nodes + 1)
        ]
        found += [
            Node(f"command{n}", "command", self.ports["command"] + COMMAND_NODE_OFFSET + n, self.ports["command"])
            for n in range(1, self.command_nodes + 1)
        ]
        return found

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

    def node_env(self, node: Node) -> dict[str, str]:
        """A node's environment: a data directory of its own and the listener's address."""
        return {
            **self.env(),
            "INVENTORY_DATA_DIR": str(self.data_dir / "nodes" / node.name),
            "INVENTORY_LISTENER_URL": f"http://127.0.0.1:{self.ports['listener']}",
            "INVENTORY_JWT_SECRET": self._jwt_secret,
        }

    def _kafka_env(self) -> dict[str, str]:
        return {**os.environ, "KAFKA_PORT": str(self.kafka_port), "KAFKA_DATA_DIR": str(self.data_dir / "kafka")}

    def start(self) -> None:
        if self.query_nodes < 1 or self.command_nodes < 1:
            raise RuntimeError("--query-nodes and --command-nodes are at least 1")
        if not BROKER.exists():
            raise RuntimeError("inventory dev runs from a checkout of the project (kafka/broker.sh is missing)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.say(f"starting Kafka on 127.0.0.1:{self.kafka_port} (first start fetches it from Maven Central)...")
        subprocess.run(["bash", str(BROKER), "start"], env=self._kafka_env(), check=True, stdout=subprocess.DEVNULL)
        self._kafka_started = True
        self._start_redis()
        if self.scaled:
            self._start_nodes()
            return
        for role in ("listener", "command", "query"):
            self._start_role(role)
        for role in ("listener", "command", "query"):
            self._wait_healthy(role)

    def _start_nodes(self) -> None:
        """The listener first (nodes take their first snapshot and the accounts from it), with the
        accounts in its data directory before any node pulls them."""
        try:
            self._jwt_secret = load_settings(self.env()).jwt_secret
        except ConfigError as exc:
            raise RuntimeError(f"configuration error: {exc}") from None
        self.ensure_admin()
        self._start_role("listener")
        self._wait_healthy("listener")
        for node in self.nodes():
            self._start_node(node)
        for node in self.nodes():
            self._wait_healthy(node.name, node.port)

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
        self._spawn(role, ["--role", role, "--port", str(self.ports[role])], self.env())

    def _start_node(self, node: Node) -> None:
        args = ["--role", node.role, "--port", str(node.port), "--shared-port", str(node.shared_port)]
        self._spawn(node.name, args, self.node_env(node))

    def _spawn(self, name: str, serve_args: list[str], env: dict[str, str]) -> None:
        log = (self.data_dir / f"{name}.log").open("ab")
        self._processes[name] = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", *serve_args], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def _wait_healthy(self, name: str, port: int | None = None, timeout: float = 120) -> None:
        url = f"http://127.0.0.1:{port or self.ports[name]}/api/v1/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self._processes[name]
            if process.poll() is not None:
                raise RuntimeError(self._role_failed(name, f"exited with {process.returncode}"))
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(self._role_failed(name, f"did not become healthy in {timeout:.0f} s"))

    def _role_failed(self, role: str, what: str) -> str:
        """Name the failure and quote the end of the role's log: the reason is usually there."""
        log = self.data_dir / f"{role}.log"
        tail = log.read_text(errors="replace").splitlines()[-LOG_LINES_ON_FAILURE:] if log.exists() else []
        return "\n".join([f"{role} {what}; its log is {log}, ending:", *("  " + line for line in tail)])

    def ensure_admin(self) -> str | None:
        """A first admin for a fresh data directory; returns its password (None if users exist).
        The accounts live in the listener's data directory (which is ``data_dir``)."""
        if self._admin_checked:
            return self._admin_password
        env = self.env()
        listing = subprocess.run(
            [sys.executable, "-m", "app.cli", "users", "list"], env=env, capture_output=True, text=True, check=True
        )
        self._admin_checked = True
        if listing.stdout.strip():
            return None
        password = os.environ.get("INVENTORY_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "users", "add", "admin", "--role", "admin", "--password", password],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self._admin_password = password
        return password

    def addresses(self) -> list[tuple[str, str]]:
        """What to print: (what, address) for every service and, scaled out, every node."""
        q, c, lst = (self.ports[r] for r in ("query", "command", "listener"))
        rows = [
            ("pages and queries", f"http://127.0.0.1:{q}/"),
            ("commands (API)", f"http://127.0.0.1:{c}/schema/swagger"),
            ("listener", f"http://127.0.0.1:{lst}/api/v1/ready"),
        ]
        if self.scaled:
            rows[0] = (f"pages and queries ({self.query_nodes} nodes)", rows[0][1])
            rows[1] = (f"commands ({self.command_nodes} nodes)", rows[1][1])
            rows += [(f"  {node.name}", f"http://127.0.0.1:{node.port}/api/v1/ready") for node in self.nodes()]
        return rows

    def stop(self) -> None:
        nodes = [node.name for node in self.nodes()] if self.scaled else ["query", "command"]
        for name in (*nodes, "listener", "redis"):
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
