"""Real Kafka and Redis servers for the tests, started once per session."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BROKER_SCRIPT = REPO / "kafka" / "broker.sh"


def free_port() -> int:
    return free_ports_in_a_row(1)


def free_ports_in_a_row(count: int) -> int:
    """The first of `count` consecutive ports that can all be bound now, below the kernel's
    ephemeral range (where outgoing connections could take one between our check and its use)."""
    for _ in range(200):
        first = random.randint(20_000, 32_000 - count)
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} free ports in a row")


def free_port_pair() -> int:
    """A free port whose next port is free too (the broker's controller listens on port + 1)."""
    return free_ports_in_a_row(2)


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class KafkaBroker:
    """A single-node broker started by the project's own script (kafka/broker.sh)."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{port}"

    def _run(self, command: str, timeout: float = 180) -> str:
        env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_DATA_DIR": str(self.data_dir)}
        result = subprocess.run(
            ["bash", str(BROKER_SCRIPT), command], env=env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"broker.sh {command} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout.strip()

    def start(self) -> str:
        self._run("start")
        return self.bootstrap

    def stop(self) -> None:
        self._run("stop")

    def kill(self) -> None:
        """kill -9, as a crash would."""
        pid = int((self.data_dir / "broker.pid").read_text().strip())
        os.kill(pid, 9)
        deadline = time.monotonic() + 30
        while port_is_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)


class RedisServer:
    """redis-server on loopback without persistence: a restart starts empty."""

    def __init__(self, port: int, work_dir: Path) -> None:
        self.port = port
        self.work_dir = work_dir
        self.url = f"redis://127.0.0.1:{port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.work_dir), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not port_is_open(self.port):
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None
