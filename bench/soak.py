"""``python -m bench soak``: steady load for a long time, and whether memory stays flat.

The load is what a busy store chain sends all day: about 110 stock commands/s (the closed
loop's mix of adjust, reserve and release) open loop, 100 ``GET .../stock``/s and 50 live
streams held open, from a child process. Meanwhile the harness samples the resident memory
(``VmRSS``) of every process of the stack. The check: over the second half of the run (after
caches, pools and SQLite's page caches had the first half to fill up to their bounds) no
process grows by more than ``GROWTH_LIMIT_PERCENT``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import multiprocessing.connection
import random
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from bench.harness import Harness, log
from bench.httpclient import Connection, Endpoint, HttpError, SseProtocol, encode_request, open_stream
from bench.loadgen import COMMAND_MIX, ITEMS_PATH, STREAM_PATH, Meter, _bearer, _close_stream, run_async
from bench.sizes import SIZES
from bench.stack import Stack

Result = dict[str, Any]

DEFAULT_SECONDS = 3600.0
GROWTH_LIMIT_PERCENT = 5.0
WRITES_PER_S = 110.0
READS_PER_S = 100.0
STREAMS = 50
ITEMS = 500
# Coroutines (each on its own keep-alive connection) sharing each rate.
WRITERS = 8
READERS = 4


def rss_kib(pid: int) -> int | None:
    """The process's resident set size now (VmRSS), in KiB; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class SoakLoad:
    command_url: str
    query_url: str
    clerk_token: str
    viewer_tokens: list[str]
    items: list[str]
    seconds: float
    writes_per_s: float = WRITES_PER_S
    reads_per_s: float = READS_PER_S
    streams: int = STREAMS
    pids: dict[str, int] = field(default_factory=dict)


def soak_load(params: SoakLoad, pipe: multiprocessing.connection.Connection) -> None:
    try:
        pipe.send(("done", run_async(_soak_load(params))))
    except BaseException as exc:  # the parent reports it
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


async def _paced(rate: float, deadline: float, send: Any) -> int:
    """Call ``send()`` ``rate`` times a second until ``deadline``, on a fixed schedule (a slow
    answer delays the next send, it does not thin the schedule out, but nothing is sent after
    the deadline); the number of calls."""
    interval = 1.0 / rate
    due = time.monotonic() + random.random() * interval
    count = 0
    while due < deadline and time.monotonic() < deadline:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send()
        count += 1
        due += interval
    return count


async def _soak_load(p: SoakLoad) -> Result:
    commands, queries = Endpoint.parse(p.command_url), Endpoint.parse(p.query_url)
    write_headers = _bearer(p.clerk_token, json_body=True)
    writes = [
        encode_request("POST", f"{ITEMS_PATH}/{item}/{op}", commands, write_headers, body)
        for item in p.items
        for op, body, weight in COMMAND_MIX
        for _ in range(weight)
    ]
    reads = [
        encode_request("GET", f"{ITEMS_PATH}/{item}/stock", queries, _bearer(p.viewer_tokens[0])) for item in p.items
    ]
    statuses: dict[str, int] = {}
    events = 0

    def on_event(name: bytes, data: bytes, now: float) -> None:
        nonlocal events
        events += 1

    streams: list[SseProtocol] = []
    for n in range(p.streams):
        token = p.viewer_tokens[n % len(p.viewer_tokens)]
        streams.append(await open_stream(queries, STREAM_PATH, token, on_event))
    meter = Meter(p.pids)
    deadline = meter.wall_start + p.seconds

    async def worker(endpoint: Endpoint, requests: list[bytes], rate: float, kind: str, seed: int) -> int:
        rng = random.Random(seed)
        connection = await Connection.open(endpoint)

        async def send() -> None:
            nonlocal connection
            try:
                response = await connection.request(rng.choice(requests))
                key = f"{kind} {response.status}"
            except HttpError:
                key = f"{kind} connection error"
                connection.close()
                connection = await Connection.open(endpoint)
            statuses[key] = statuses.get(key, 0) + 1

        try:
            return await _paced(rate, deadline, send)
        finally:
            connection.close()

    sent = await asyncio.gather(
        *(worker(commands, writes, p.writes_per_s / WRITERS, "write", n) for n in range(WRITERS)),
        *(worker(queries, reads, p.reads_per_s / READERS, "read", 100 + n) for n in range(READERS)),
    )
    generator = meter.report()
    open_at_end = sum(1 for stream in streams if stream.transport is not None and not stream.transport.is_closing())
    for stream in streams:
        _close_stream(stream)
    wall = generator["wall_seconds"]
    return {
        "writes_per_s": round(sum(sent[:WRITERS]) / wall, 1),
        "reads_per_s": round(sum(sent[WRITERS:]) / wall, 1),
        "statuses": dict(sorted(statuses.items())),
        "streams": p.streams,
        "streams_open_at_end": open_at_end,
        "stream_events": events,
        "generator": generator,
    }


def growth(samples: list[Result], name: str) -> Result:
    """RSS of one process: at the start, the middle and the end, and the growth over each half."""
    series = [(s["t"], s["rss_mib"][name]) for s in samples if s["rss_mib"].get(name) is not None]
    if len(series) < 3:
        return {"ok": False, "why": "too few samples"}
    end_t = series[-1][0]
    middle = next(value for t, value in series if t >= end_t / 2)
    start, end = series[0][1], series[-1][1]
    second_half = 100.0 * (end - middle) / middle if middle else 0.0
    return {
        "start_mib": start,
        "middle_mib": middle,
        "end_mib": end,
        "peak_mib": max(value for _, value in series),
        "first_half_mib_per_min": round((middle - start) / (end_t / 2) * 60, 2) if end_t else 0.0,
        "second_half_mib_per_min": round((end - middle) / (end_t / 2) * 60, 2) if end_t else 0.0,
        "second_half_growth_percent": round(second_half, 2),
        "ok": second_half <= GROWTH_LIMIT_PERCENT,
    }


def memory_entries(url: str, token: str) -> dict[str, float]:
    """The sizes of a process's in-process caches, maps and queues, from its /metrics."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}), timeout=5
        ) as response:
            text = response.read().decode()
    except OSError:
        return {}
    sizes = {}
    for line in text.splitlines():
        if line.startswith("inventory_memory_entries{"):
            name = line.split('structure="', 1)[1].split('"', 1)[0]
            sizes[name] = float(line.rsplit(" ", 1)[1])
    return sizes


def soak(harness: Harness, stack: Stack, seconds: float, sample_seconds: float) -> Result:
    """Run the soak on a started (or targeted) stack whose set-up has run; the section's result."""
    viewers = [harness.tokens["viewer"]]
    params = SoakLoad(
        command_url=stack.command_url,
        query_url=stack.query_url,
        clerk_token=harness.tokens["clerk"],
        viewer_tokens=viewers,
        items=harness.items,
        seconds=seconds,
        pids={process.name: process.pid for process in stack.watched if process.pid is not None},
    )
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=soak_load, args=(params, sender), daemon=True)
    started = time.monotonic()
    child.start()
    sender.close()
    samples: list[Result] = []
    next_report = started + 60
    outcome: tuple[str, Any] | None = None
    try:
        while outcome is None:
            now = time.monotonic()
            samples.append(
                {
                    "t": round(now - started, 1),
                    "rss_mib": {
                        process.name: round(kib / 1024, 1) if (kib := rss_kib(process.pid)) is not None else None
                        for process in stack.watched
                        if process.pid is not None
                    },
                }
            )
            if now >= next_report:
                log(f"  soak {now - started:.0f}/{seconds:.0f} s, RSS MiB {samples[-1]['rss_mib']}")
                samples[-1]["memory_entries"] = {
                    role: memory_entries(url, harness.tokens["viewer"]) for role, url in _urls(stack).items()
                }
                next_report = now + 60
            if receiver.poll(sample_seconds):
                outcome = receiver.recv()
            elif now - started > seconds + 300:
                raise TimeoutError("the soak load did not finish")
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    status, load = outcome
    if status != "done":
        raise RuntimeError(f"the soak load failed: {load}")
    ending = {role: memory_entries(url, harness.tokens["viewer"]) for role, url in _urls(stack).items()}
    names = sorted({name for sample in samples for name in sample["rss_mib"]})
    roles = {name: growth(samples, name) for name in names}
    return {
        "seconds": round(time.monotonic() - started, 1),
        "offered": {"writes_per_s": WRITES_PER_S, "reads_per_s": READS_PER_S, "streams": STREAMS},
        "load": load,
        "growth_limit_percent": GROWTH_LIMIT_PERCENT,
        "rss": roles,
        "ok": all(role["ok"] for role in roles.values()),
        # inventory_memory_entries{structure} of every process at the end (see docs/decisions.md).
        "memory_entries_at_end": ending,
        "samples": samples,
    }


def _urls(stack: Stack) -> dict[str, str]:
    """Each process of the stack that serves /metrics, by role."""
    roles = {"command": stack.command_url, "query": stack.query_url, "listener": stack.listener_url or ""}
    if len(set(roles.values())) == 1:
        return {"all": stack.command_url}
    return {role: url for role, url in roles.items() if url}


def soak_size() -> Any:
    """The set-up for a soak: the small size with a pool of ``ITEMS`` items."""
    return dataclasses.replace(SIZES["small"], name="soak", items=ITEMS, cold_items=0)


def render(section: Result) -> str:
    """The soak's table: RSS per process at the start, middle and end, and the check."""
    if "rss" not in section:
        return f"soak: {section.get('error') or section.get('skipped') or 'no result'}"
    load = section["load"]
    lines = [
        f"soak: {section['seconds']:.0f} s at {load['writes_per_s']} writes/s, {load['reads_per_s']} reads/s, "
        f"{load['streams_open_at_end']}/{load['streams']} streams open at the end ({load['stream_events']} events)",
        f"answers: {load['statuses']}",
        "",
        f"{'process':<10} {'start':>8} {'middle':>8} {'end':>8} {'peak':>8} {'1st half':>10} {'2nd half':>10}"
        f" {'2nd half':>9}  check (<= {section['growth_limit_percent']} %)",
        f"{'':<10} {'MiB':>8} {'MiB':>8} {'MiB':>8} {'MiB':>8} {'MiB/min':>10} {'MiB/min':>10} {'growth':>9}",
    ]
    for name, rss in section["rss"].items():
        if "start_mib" not in rss:
            lines.append(f"{name:<10} {rss.get('why', '')}")
            continue
        lines.append(
            f"{name:<10} {rss['start_mib']:>8} {rss['middle_mib']:>8} {rss['end_mib']:>8} {rss['peak_mib']:>8} "
            f"{rss['first_half_mib_per_min']:>10} {rss['second_half_mib_per_min']:>10} "
            f"{rss['second_half_growth_percent']:>8}%  {'ok' if rss['ok'] else 'FAILED'}"
        )
    return "\n".join(lines)
