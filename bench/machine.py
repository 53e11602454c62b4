"""A description of the machine and software a result was measured on."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("litestar", "uvicorn", "uvloop", "httptools", "msgspec", "aiokafka", "redis", "aiosqlite")


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _first_line(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    output = (result.stdout or result.stderr).strip()
    return output.splitlines()[0] if output else None


def _kafka_version() -> str | None:
    with contextlib.suppress(OSError):
        match = re.search(r"<kafka.version>([^<]+)</kafka.version>", (REPO / "kafka" / "pom.xml").read_text())
        return match.group(1) if match else None
    return None


def describe(mode: str) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "mode": mode,
        "packages": versions,
        "kafka": _kafka_version() if mode == "kafka" else None,
        "java": _first_line(["java", "-version"]) if mode == "kafka" else None,
        "redis_server": _first_line(["redis-server", "--version"]) if mode == "kafka" else None,
    }
