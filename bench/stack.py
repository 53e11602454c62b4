"""The system under test: started by the harness (embedded or Kafka mode) or already running.

A started stack lives in a work directory of its own (fresh ``INVENTORY_DATA_DIR``, fresh topic
prefix, its own broker and redis-server on free ports) and is stopped whatever happens: by
``Stack.stop`` in the harness's ``finally``, and by an ``atexit`` hook if that never ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.procs import ManagedProcess, Watched, listening_pid, register, wait_until

REPO = Path(__file__).resolve().parents[1]
BROKER_SCRIPT = REPO / "kafka" / "broker.sh"

# The users the harness creates for itself (one per role it needs).
USERS = {"manager": "bench-manager", "clerk": "bench-clerk", "viewer": "bench-viewer"}


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(pair: bool = False) -> int:
    """A free loopback port below the kernel's ephemeral range (32768 and up on Linux), so that no
    outgoing connection can take it before the server binds it; with ``pair`` its successor is
    free too (Kafka's controller listens there)."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20_000, 32_000)
        if _bindable(port) and (not pair or _bindable(port + 1)):
            return port
    raise RuntimeError("no free port found")


def http_json(url: str, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"{}")
        except ValueError:
            return exc.code, {}


def _answers(url: str) -> bool:
    try:
        return http_json(f"{url}/api/v1/health", timeout=1.0)[0] == 200
    except (OSError, ValueError):
        return False


def _listener_ready(url: str) -> bool:
    """The listener consumes (so its topics exist) and its database is open."""
    try:
        status, body = http_json(f"{url}/api/v1/ready", timeout=2.0)
    except (OSError, ValueError):
        return False
    listener = body.get("checks", {}).get("listener", {})
    return status == 200 and listener.get("status") == "ok"


class Service(ManagedProcess):
    """One role of the application as a process of its own."""

    def __init__(self, role: str, port: int, env: dict[str, str], logs: Path, workers: int = 1) -> None:
        argv = [sys.executable, "-m", "app.cli", "serve", "--role", role, "--port", str(port)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        super().__init__(role, argv, env, logs / f"{role}.log", REPO)
        self.workers = workers
        self.role = role
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def healthy() -> bool:
            if self.exited() is not None:
                raise RuntimeError(f"{self.role} exited at start:\n{self.log_tail()}")
            return _answers(self.url)

        wait_until(healthy, timeout, f"{self.role} to answer /api/v1/health")

    def wait_consuming(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if self.exited() is not None:
                raise RuntimeError(f"{self.role} exited at start:\n{self.log_tail()}")
            return _listener_ready(self.url)

        wait_until(ready, timeout, f"the {self.role} process to consume", interval=0.1)


class RedisProcess(ManagedProcess):
    """redis-server on loopback, no persistence: a restart starts empty."""

    def __init__(self, port: int, work_dir: Path, logs: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(work_dir), "--loglevel", "warning"]  # fmt: skip
        work_dir.mkdir(parents=True, exist_ok=True)
        super().__init__("redis-server", argv, dict(os.environ), logs / "redis.log", work_dir)
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        super().start()

        def up() -> bool:
            if self.exited() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self.log_tail()}")
            with socket.socket() as sock:
                sock.settimeout(0.2)
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(up, 20, "redis-server")


class Broker(Watched):
    """A single-node Kafka broker started by the project's kafka/broker.sh."""

    def __init__(self, port: int, data_dir: Path) -> None:
        super().__init__("kafka-broker")
        self.port = port
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{port}"
        self._pgid: int | None = None

    def _script(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_DATA_DIR": str(self.data_dir)}
        process = subprocess.Popen(
            ["bash", str(BROKER_SCRIPT), command],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the JVM it leaves running stays in this group
        )
        if command == "start":
            self._pgid = process.pid
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def start(self) -> None:
        register(self)
        result = self._script("start", timeout=240)
        if result.returncode != 0:
            raise RuntimeError(f"kafka/broker.sh start failed:\n{result.stdout}\n{result.stderr}")
        self.pid = int((self.data_dir / "broker.pid").read_text().strip())

    def stop(self, timeout: float = 30.0) -> None:
        if self.pid is None and self._pgid is None:
            return
        self.retire()
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._script("stop", timeout=timeout + 15)
        if self._pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pgid, signal.SIGKILL)
            self._pgid = None


@dataclass
class Stack:
    """What the workloads need to know about the system under test."""

    mode: str  # "embedded" or "kafka"
    command_url: str
    query_url: str
    passwords: dict[str, str]  # user name -> password
    data_dir: Path | None = None  # enables the database checks and the catch-up measurement
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    topic_prefix: str = ""
    started: bool = False  # the harness owns the processes (may stop and restart them)
    listener_url: str | None = None
    watched: list[Watched] = field(default_factory=list)

    def user(self, role: str) -> tuple[str, str]:
        name = USERS[role] if USERS[role] in self.passwords else next(iter(self.passwords))
        return name, self.passwords[name]

    def start(self) -> None:
        """Nothing to do for a stack that runs already."""

    def stop(self) -> None:
        """Nothing to do for a stack that runs already."""

    def sample(self) -> None:
        for process in self.watched:
            process.sample()

    # Operations only a started stack supports.

    def stop_listener(self) -> None:
        raise NotImplementedError("the listener can only be stopped on a stack the harness started")

    def start_listener(self, wait: bool = True) -> None:
        raise NotImplementedError("the listener can only be started on a stack the harness started")

    def wait_listener(self) -> None:
        raise NotImplementedError("the listener can only be started on a stack the harness started")

    def listener_log(self) -> str:
        return "the listener's log"

    def stop_redis(self) -> None:
        raise NotImplementedError("redis-server can only be stopped on a stack the harness started")

    def start_redis(self) -> None:
        raise NotImplementedError("redis-server can only be started on a stack the harness started")


class StartedStack(Stack):
    """A stack the harness starts in ``work_dir`` and stops on the way out."""

    def __init__(self, mode: str, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.logs = work_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        data_dir = work_dir / "data"
        passwords = {name: secrets.token_urlsafe(16) for name in USERS.values()}
        super().__init__(mode, "", "", passwords, data_dir=data_dir, started=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
        self.env.update(
            {
                "INVENTORY_DATA_DIR": str(data_dir),
                "INVENTORY_JWT_SECRET": "bench-" + secrets.token_urlsafe(40),
                "INVENTORY_LOG_LEVEL": "WARNING",
                "INVENTORY_LOCATIONS": "MAIN,S001",
                # The fan-out holds thousands of streams with one viewer's token.
                "INVENTORY_MAX_STREAMS_PER_USER": "100000",
            }
        )
        self.services: dict[str, Service] = {}
        self.redis: RedisProcess | None = None
        self.broker: Broker | None = None

    def create_users(self) -> None:
        for role, name in USERS.items():
            result = subprocess.run(
                [sys.executable, "-m", "app.cli", "users", "add", name, "--role", role,
                 f"--password={self.passwords[name]}"],
                env=self.env, cwd=REPO, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if result.returncode != 0:
                raise RuntimeError(f"inventory users add {name} failed:\n{result.stdout}\n{result.stderr}")

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.broker is not None:
            self.broker.stop()


class EmbeddedStack(StartedStack):
    """``inventory serve --role all``: the embedded event log and the in-process cache."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__("embedded", work_dir)
        self.all = Service("all", free_port(), self.env, self.logs)
        self.services = {"all": self.all}
        self.watched = [self.all]
        self.command_url = self.query_url = self.listener_url = self.all.url

    def start(self) -> None:
        self.create_users()
        self.start_listener()

    def stop_listener(self) -> None:
        self.all.stop()

    def start_listener(self, wait: bool = True) -> None:
        self.all.start()
        if wait:
            self.wait_listener()

    def wait_listener(self) -> None:
        self.all.wait_healthy()
        self.all.wait_consuming()

    def listener_log(self) -> str:
        return str(self.all.log_path)


class KafkaStack(StartedStack):
    """A broker, a redis-server, and the command, listener and query roles as processes."""

    def __init__(self, work_dir: Path, query_workers: int = 1) -> None:
        super().__init__("kafka", work_dir)
        self.query_workers = query_workers
        self.broker = Broker(free_port(pair=True), work_dir / "kafka")
        self.redis = RedisProcess(free_port(), work_dir / "redis", self.logs)
        self.kafka_bootstrap = self.broker.bootstrap
        self.redis_url = self.redis.url
        self.topic_prefix = f"bench{uuid.uuid4().hex[:10]}."
        self.env.update(
            {
                "INVENTORY_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                "INVENTORY_KAFKA_TOPIC_PREFIX": self.topic_prefix,
                "INVENTORY_REDIS_URL": self.redis.url,
            }
        )
        self.services = {
            role: Service(role, free_port(), self.env, self.logs, query_workers if role == "query" else 1)
            for role in ("listener", "command", "query")
        }
        self.command_url = self.services["command"].url
        self.query_url = self.services["query"].url
        self.listener_url = self.services["listener"].url
        self.watched = [*self.services.values(), self.broker, self.redis]

    def start(self) -> None:
        assert self.broker is not None and self.redis is not None
        self.broker.start()
        self.redis.start()
        self.create_users()
        # The listener creates the topics and the database; the others start once it consumes.
        self.start_listener()
        for role in ("command", "query"):
            self.services[role].start()
        for role in ("command", "query"):
            self.services[role].wait_healthy()

    def stop_listener(self) -> None:
        self.services["listener"].stop()

    def start_listener(self, wait: bool = True) -> None:
        self.services["listener"].start()
        if wait:
            self.wait_listener()

    def wait_listener(self) -> None:
        self.services["listener"].wait_healthy()
        self.services["listener"].wait_consuming()

    def listener_log(self) -> str:
        return str(self.services["listener"].log_path)

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.stop()

    def start_redis(self) -> None:
        assert self.redis is not None
        self.redis.start()


def target_stack(
    mode: str,
    targets: list[str],
    passwords: dict[str, str],
    data_dir: Path | None,
    redis_url: str | None,
    kafka_bootstrap: str | None,
    topic_prefix: str,
) -> Stack:
    """A stack that runs already: ``URL`` (every role) or ``command=URL``, ``query=URL``."""
    urls: dict[str, str] = {}
    for target in targets:
        for part in target.split(","):
            role, sep, url = part.partition("=")
            if not sep:
                role, url = "all", part
            if role not in ("all", "command", "query", "listener"):
                raise ValueError(f"unknown role {role!r} in --target {target!r}")
            urls[role] = url.rstrip("/")
    command = urls.get("command") or urls.get("all")
    query = urls.get("query") or urls.get("all")
    if command is None or query is None:
        raise ValueError("--target needs a URL for every role, or command=URL and query=URL")
    stack = Stack(
        mode,
        command,
        query,
        passwords,
        data_dir=data_dir,
        redis_url=redis_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        listener_url=urls.get("listener") or urls.get("all"),
    )
    for role, url in urls.items():
        pid = listening_pid(urlsplit(url).port or 80)
        if pid is not None:
            stack.watched.append(Watched(role, pid))
    return stack
