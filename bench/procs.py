"""Processes the harness starts (and always stops), and what /proc says about any process."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int | None:
    """The process's peak resident set size (VmHWM) in KiB, None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def current_rss_kib(pid: int) -> int | None:
    """The process's resident set size now (VmRSS) in KiB, None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def process_tree(pid: int) -> list[int]:
    """The process and its direct children (a supervisor's workers)."""
    return [pid, *children(pid)]


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time the process has used so far, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children(pid: int) -> list[int]:
    """The process's direct children (the workers of ``inventory serve --workers N``)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            return [int(child) for child in listed.read().split()]
    except (OSError, ValueError):
        return []


def host_busy_seconds() -> float:
    """CPU time all cores of the machine spent busy (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS


def _sessions(pids: Iterable[int]) -> set[int]:
    sessions = {os.getsid(0)}  # the harness and its load generator processes
    for pid in pids:
        with contextlib.suppress(OSError):
            sessions.add(os.getsid(pid))
    return sessions


def other_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """CPU used so far by every user process outside the sessions of ``pids`` and of the harness
    (the stack's processes each run in a session of their own), reaped children included;
    kernel threads are left out, so the kernel's own work for the stack (journal, fsync) is too."""
    ours = _sessions(pids)
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid, session = int(entry), int(fields[1]), int(fields[3])
        if pid == 2 or ppid == 2 or session in ours:
            continue
        used[pid] = sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS
    return used


def cpu_spent_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two ``other_cpu_seconds`` readings (new processes count from 0)."""
    return sum(max(0.0, value - before.get(pid, 0.0)) for pid, value in after.items())


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on a local TCP port (for stacks the harness did not start)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{entry}/fd/{fd}")
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        return int(entry)
    return None


@dataclass
class Watched:
    """A process whose peak memory and CPU are reported; it may be restarted (new pid)."""

    name: str
    pid: int | None = None
    peak_kib: int = 0
    cpu_of_earlier: float = 0.0  # CPU of instances that already exited

    def sample(self) -> None:
        # With workers (``inventory serve --workers N``) the peak of the largest process.
        if self.pid is not None:
            for pid in (self.pid, *children(self.pid)):
                self.peak_kib = max(self.peak_kib, peak_rss_kib(pid) or 0)

    def cpu(self) -> float:
        if self.pid is None:
            return self.cpu_of_earlier
        # A supervisor's workers are its children: their CPU is the role's.
        used = sum(cpu_seconds(pid) or 0.0 for pid in (self.pid, *children(self.pid)))
        return self.cpu_of_earlier + used

    def retire(self) -> None:
        """Call just before the process exits: keep its figures."""
        if self.pid is not None:
            self.sample()
            self.cpu_of_earlier = self.cpu()
            self.pid = None


class Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


_STARTED: list[Stoppable] = []


def register(process: Stoppable) -> None:
    """Stop this at interpreter exit if nobody did before (a crash of the harness, Ctrl-C)."""
    if process not in _STARTED:
        _STARTED.append(process)


def _stop_everything() -> None:
    for process in reversed(_STARTED):
        with contextlib.suppress(Exception):
            process.stop(timeout=5)


atexit.register(_stop_everything)


class ManagedProcess(Watched):
    """A child in a session (and process group) of its own, stopped with the whole group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> None:
        super().__init__(name)
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self._popen.pid
        register(self)

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def exited(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        popen = self._popen
        if popen is None:
            return
        self.retire()
        self._signal_group(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)
        # Whatever the leader left behind in its group goes too.
        self._signal_group(popen.pid, signal.SIGKILL)
        self._popen = None

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def wait_until(check: object, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check()`` until it is true; raise TimeoutError naming ``what``."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
