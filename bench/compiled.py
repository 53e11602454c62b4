"""The compiled HTTP load generator (``hey``), the benchmark's default client, and the
project's own generator (``bench/loadgen.py``) when ``hey`` cannot be had.

``hey`` is installed by the benchmark itself with ``go install`` from the Go module proxy into a
cache directory outside the repository (the binary is never committed). A result says which
client ran. The Python generator stays for what a compiled client cannot do: live streams,
freshness (one item version at a time), and reads spread over many items.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import api
from bench.loadgen import ReadLoad, read_load, run_async, run_in_process
from bench.stats import rate, summarize

Result = dict[str, Any]

HEY_MODULE = "github.com/rakyll/hey@latest"
# Outside the repository: the binary is never committed.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "inventory-bench" / "bin"


def find_hey(install: bool = True) -> tuple[str | None, str]:
    """The ``hey`` binary (on PATH, in the cache, or installed now), and how it was found."""
    for candidate in (shutil.which("hey"), CACHE_DIR / "hey"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate), f"found {candidate}"
    go = shutil.which("go")
    if not install or go is None:
        return None, "hey not found and go not installed"
    from bench.harness import log  # the harness uses this module too

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log(f"installing hey: go install {HEY_MODULE} (into {CACHE_DIR})")
    env = {**os.environ, "GOBIN": str(CACHE_DIR)}
    try:
        result = subprocess.run([go, "install", HEY_MODULE], env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"go install failed: {exc}"
    if result.returncode != 0 or not (CACHE_DIR / "hey").exists():
        return None, f"go install failed: {(result.stderr or result.stdout).strip()[-300:]}"
    return str(CACHE_DIR / "hey"), f"installed with go install {HEY_MODULE}"


def _hey(binary: str, url: str, token: str, clients: int, seconds: float, body: bytes | None) -> Result:
    argv = [binary, "-z", f"{seconds}s", "-c", str(clients), "-o", "csv", "-H", f"Authorization: Bearer {token}"]
    if body is not None:
        argv += ["-m", "POST", "-T", "application/json", "-d", body.decode()]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"hey failed: {result.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # One row per request: response-time, DNS+dialup, DNS, request-write, response-delay,
    # response-read, status-code, offset (seconds since the start).
    latencies: dict[int, list[float]] = {}
    last = 0.0
    for row in csv.DictReader(io.StringIO(result.stdout)):
        status = int(row["status-code"])
        latencies.setdefault(status, []).append(float(row["response-time"]))
        last = max(last, float(row["offset"]) + float(row["response-time"]))
    # The client's own CPU (100 % = one core): on two shared cores it competes with the server.
    return {"latencies": latencies, "wall_seconds": max(last, seconds), "cpu_percent": round(100 * cpu / seconds, 1)}


def _python(url: str, token: str, clients: int, seconds: float, path: str, body: bytes | None) -> Result:
    if body is not None:
        return run_async(_python_posts(url, token, clients, seconds, path, body))
    result = run_in_process(read_load, ReadLoad(url, token, [path], clients, seconds), timeout=seconds + 120)
    # The read load keeps only the latencies of 200s: rebuild the shape hey gives.
    summary = result["latency"]
    return {"summary": summary, "count": result["requests"], "wall_seconds": result["generator"]["wall_seconds"],
            "other_statuses": result["other_statuses"]}  # fmt: skip


async def _python_posts(url: str, token: str, clients: int, seconds: float, path: str, body: bytes) -> Result:
    client = api.Client(url, token, connections=clients)
    latencies: dict[int, list[float]] = {}
    started = time.monotonic()
    deadline = started + seconds

    async def one_client() -> None:
        while time.monotonic() < deadline:
            sent = time.monotonic()
            response = await client.call("POST", path, json.loads(body))
            latencies.setdefault(response.status, []).append(time.monotonic() - sent)

    try:
        await asyncio.gather(*(one_client() for _ in range(clients)))
    finally:
        client.close()
    return {"latencies": latencies, "wall_seconds": time.monotonic() - started}


@dataclass
class Generator:
    hey: str | None
    how: str

    @property
    def name(self) -> str:
        return "hey" if self.hey else "python (bench/loadgen.py)"

    def _load(self, url: str, token: str, path: str, clients: int, seconds: float, body: bytes | None) -> Result:
        if self.hey:
            return _hey(self.hey, url + path, token, clients, seconds, body)
        return _python(url, token, clients, seconds, path, body)

    def measure(self, url: str, token: str, path: str, clients: int, seconds: float, ok: int,
                body: bytes | None = None, warmup: float = 0.0) -> Result:  # fmt: skip
        """Closed loop for ``seconds`` after ``warmup`` seconds unrecorded: requests/s with status
        ``ok`` and their latency."""
        warmed = 0
        if warmup > 0:
            raw = self._load(url, token, path, clients, warmup, body)
            warmed = raw["count"] if "count" in raw else len(raw["latencies"].get(ok, []))
        raw = self._load(url, token, path, clients, seconds, body)
        if "summary" in raw:
            count, summary, others = raw["count"], raw["summary"], raw["other_statuses"]
        else:
            good = sorted(raw["latencies"].get(ok, []))
            count, summary = len(good), summarize(good)
            others = {str(k): len(v) for k, v in sorted(raw["latencies"].items()) if k != ok}
        return {
            "clients": clients,
            "warmup_requests": warmed,
            "requests": count,
            "per_s": rate(count, raw["wall_seconds"]),
            "latency": summary,
            "other_statuses": others,
            "client_cpu_percent": raw.get("cpu_percent"),
        }
