"""The load generator: workloads that run in processes of their own.

Each workload runs in a child process (``multiprocessing``, spawn), so the harness's own work
never competes with it for the interpreter, and it reports the CPU it used during the measured
window: a generator near 100 % of one core is itself the bottleneck and its figures say so.
All times are ``time.monotonic()``, which on Linux is one clock for every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import random
import resource
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from bench.httpclient import (
    Connection,
    ConnectionPool,
    Endpoint,
    HttpError,
    Response,
    SseProtocol,
    encode_request,
    open_stream,
)
from bench.procs import cpu_seconds, cpu_spent_since, host_busy_seconds, other_cpu_seconds
from bench.stats import rate, summarize

T = TypeVar("T")
Result = dict[str, Any]

ITEMS_PATH = "/api/v1/inventory/items"
STREAM_PATH = "/api/v1/inventory/stream"
# Stock commands in the closed loop: mostly +1 adjustments, some reserves and releases.
COMMAND_MIX = (("adjust", b'{"quantity":1}', 5), ("reserve", b'{"quantity":1}', 3), ("release", b'{"quantity":1}', 2))


class Accepted(msgspec.Struct):
    command_id: str


class ItemVersion(msgspec.Struct):
    version: int


class ItemChange(msgspec.Struct):
    item_id: str
    version: int


_accepted = msgspec.json.Decoder(Accepted)
_version = msgspec.json.Decoder(ItemVersion)
_change = msgspec.json.Decoder(ItemChange)


def command_id_of(response: Response) -> str:
    return _accepted.decode(response.body).command_id


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed (it is with the project's web server)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@dataclass
class Meter:
    """CPU and wall time of the measured window of a workload: its own, and that of the processes
    of the stack (``pids``) and of the whole machine over the same window."""

    pids: dict[str, int] = field(default_factory=dict)
    wall_start: float = field(default_factory=time.monotonic)
    cpu_start: float = field(default_factory=time.process_time)
    window: Result = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stack_start = {name: cpu_seconds(pid) or 0.0 for name, pid in self.pids.items()}
        self._host_start = host_busy_seconds()
        self._others_start = other_cpu_seconds(self.pids.values())

    def report(self) -> Result:
        """The generator's figures; the stack's and the machine's go to ``window``."""
        wall = time.monotonic() - self.wall_start
        cpu = time.process_time() - self.cpu_start

        def percent(seconds: float) -> float:
            return round(100.0 * seconds / wall, 1) if wall > 0 else 0.0

        stack = {name: max(0.0, (cpu_seconds(pid) or 0.0) - self._stack_start[name]) for name, pid in self.pids.items()}
        self.window = {
            "server_cpu": {name: {"cpu_seconds": round(v, 2), "cpu_percent": percent(v)} for name, v in stack.items()},
            "host_busy_percent": percent(host_busy_seconds() - self._host_start),
            "other_processes_percent": percent(
                cpu_spent_since(self._others_start, other_cpu_seconds(self.pids.values()))
            ),
        }
        return {
            "cpu_seconds": round(cpu, 3),
            "wall_seconds": round(wall, 3),
            # Of one core: the generator is one thread, so near 100 means it was the limit.
            "cpu_percent": percent(cpu),
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }


def _bearer(token: str, json_body: bool = False) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if json_body:
        headers["Content-Type"] = "application/json"
    return headers


# --- running a workload in a child process ----------------------------------------------


def _report(pipe: multiprocessing.connection.Connection, tag: str, work: Callable[[], Any]) -> None:
    """Send (tag, what work returned), or ("error", why), to the parent; then hang up."""
    try:
        pipe.send((tag, work()))
    except KeyboardInterrupt:
        pipe.send(("error", "interrupted"))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
    finally:
        pipe.close()


def _child(target: Callable[[Any], Result], params: Any, pipe: multiprocessing.connection.Connection) -> None:
    _report(pipe, "ok", lambda: target(params))


def run_in_process(target: Callable[[Any], Result], params: Any, timeout: float) -> Result:
    """Run ``target(params)`` in a fresh process and return its result."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(target, params, sender), daemon=True)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            raise TimeoutError(f"{target.__name__} did not finish within {timeout:.0f} s")
        status, payload = receiver.recv()
    except EOFError:
        raise RuntimeError(f"{target.__name__} died (exit code {process.exitcode})") from None
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
    if status != "ok":
        raise RuntimeError(f"{target.__name__} failed:\n{payload}")
    return dict(payload)


# --- 1. commands, closed loop ------------------------------------------------------------


@dataclass(frozen=True)
class CommandLoad:
    url: str
    token: str
    items: list[str]
    clients: int
    seconds: float
    seed: int = 1
    pids: dict[str, int] = field(default_factory=dict)  # processes of the stack, for their CPU


def command_load(params: CommandLoad) -> Result:
    return run_async(_command_load(params))


async def _command_load(p: CommandLoad) -> Result:
    endpoint = Endpoint.parse(p.url)
    headers = _bearer(p.token, json_body=True)
    ops = [(f"{ITEMS_PATH}/{{}}/{op}", body) for op, body, _ in COMMAND_MIX]
    weights = [weight for _, _, weight in COMMAND_MIX]
    requests = [[encode_request("POST", path.format(item), endpoint, headers, body) for path, body in ops]
                for item in p.items]  # fmt: skip
    connections = await asyncio.gather(*(Connection.open(endpoint) for _ in range(p.clients)))
    latencies: list[float] = []
    command_ids: list[str] = []
    statuses: Counter[int] = Counter()
    errors = 0
    meter = Meter(p.pids)
    deadline = meter.wall_start + p.seconds

    async def client(connection: Connection, rng: random.Random) -> None:
        nonlocal errors
        while (started := time.monotonic()) < deadline:
            raw = rng.choices(rng.choice(requests), weights)[0]
            try:
                response = await connection.request(raw)
            except HttpError:
                errors += 1
                connection.close()
                connection = await Connection.open(endpoint)
                continue
            if response.status == 202:
                latencies.append(time.monotonic() - started)
                command_ids.append(command_id_of(response))
            else:
                statuses[response.status] += 1
        connection.close()

    await asyncio.gather(*(client(c, random.Random(p.seed * 1000 + i)) for i, c in enumerate(connections)))
    generator = meter.report()
    return {
        "clients": p.clients,
        "seconds": generator["wall_seconds"],
        "accepted": len(latencies),
        "accepted_per_s": rate(len(latencies), generator["wall_seconds"]),
        "latency_202": summarize(latencies),
        "other_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "connection_errors": errors,
        "generator": generator,
        "window": meter.window,
        "command_ids": command_ids,
    }


# --- 3. freshness, open loop -------------------------------------------------------------


@dataclass(frozen=True)
class OpenLoad:
    command_url: str
    query_url: str
    clerk_token: str
    viewer_token: str
    items: list[tuple[str, int]]  # item id and its current version
    rate: float
    seconds: float
    get_every: int  # follow every n-th command with GET polling
    poll_seconds: float
    settle_seconds: float = 30.0
    max_connections: int = 2_000
    pids: dict[str, int] = field(default_factory=dict)


@dataclass
class Sent:
    item: str
    target: int  # the item version that includes this command
    scheduled: float
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    command_id: str = ""
    visible_get: float = 0.0


def open_load(params: OpenLoad) -> Result:
    return run_async(_open_load(params))


async def _open_load(p: OpenLoad) -> Result:
    commands = ConnectionPool(Endpoint.parse(p.command_url), p.max_connections)
    query_endpoint = Endpoint.parse(p.query_url)
    reads = ConnectionPool(query_endpoint, 512)
    await commands.fill(min(64, p.max_connections))
    await reads.fill(8)
    clerk = _bearer(p.clerk_token, json_body=True)
    viewer = _bearer(p.viewer_token)
    adjust = {item: encode_request("POST", f"{ITEMS_PATH}/{item}/adjust", commands.endpoint, clerk, b'{"quantity":1}')
              for item, _ in p.items}  # fmt: skip
    get = {item: encode_request("GET", f"{ITEMS_PATH}/{item}", query_endpoint, viewer) for item, _ in p.items}

    arrivals: dict[str, list[tuple[int, float]]] = defaultdict(list)
    in_flight: dict[str, int] = {}  # item -> highest version an in-flight command waits for

    all_seen = asyncio.Event()
    sending = True

    def on_event(name: bytes, data: bytes, now: float) -> None:
        if name != b"item":
            return
        change = _change.decode(data)
        arrivals[change.item_id].append((change.version, now))
        waiting = in_flight.get(change.item_id)
        if waiting is not None and change.version >= waiting:
            settle(change.item_id)

    versions = dict(p.items)
    assigned: Counter[str] = Counter()
    order = deque(item for item, _ in p.items)
    free = deque(order)  # items with no command in flight, in the order they became free
    reused = 0
    sent: list[Sent] = []
    tasks: set[asyncio.Task[None]] = set()
    errors = 0

    def pick() -> str:
        """An item with no command in flight (so each change is attributable), if there is one."""
        nonlocal reused
        if free:
            return free.popleft()
        reused += 1
        item = order[0]
        order.rotate(-1)
        return item

    def settle(item: str) -> None:
        del in_flight[item]
        free.append(item)
        if not in_flight and not sending:
            all_seen.set()

    def forget(record: Sent) -> None:
        """No change will come for this command: stop waiting for it."""
        if in_flight.get(record.item) == record.target:
            settle(record.item)

    async def poll(record: Sent) -> None:
        deadline = record.answered + p.settle_seconds
        while time.monotonic() < deadline:
            try:
                response = await reads.request(get[record.item])
            except HttpError:
                await asyncio.sleep(p.poll_seconds)
                continue
            if response.status == 200 and _version.decode(response.body).version >= record.target:
                record.visible_get = time.monotonic()
                return
            await asyncio.sleep(p.poll_seconds)

    async def send(record: Sent, follow: bool) -> None:
        nonlocal errors
        record.sent = time.monotonic()
        try:
            response = await commands.request(adjust[record.item])
        except HttpError:
            errors += 1
            record.status = -1
            forget(record)
            return
        record.answered = time.monotonic()
        record.status = response.status
        if response.status != 202:
            assigned[record.item] -= 1  # nothing was published: the next one takes this version
            forget(record)
            return
        record.command_id = command_id_of(response)
        if follow:
            await poll(record)

    stream = await open_stream(query_endpoint, STREAM_PATH, p.viewer_token, on_event)
    count = max(1, int(p.rate * p.seconds))
    interval = 1.0 / p.rate
    meter = Meter(p.pids)
    start = meter.wall_start + 0.01
    for index in range(count):
        scheduled = start + index * interval
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        item = pick()
        assigned[item] += 1
        target = versions[item] + assigned[item]
        in_flight[item] = max(in_flight.get(item, 0), target)
        record = Sent(item, target, scheduled)
        sent.append(record)
        task = asyncio.create_task(send(record, follow=index % p.get_every == 0))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    last_scheduled = time.monotonic()
    if tasks:
        await asyncio.wait(set(tasks), timeout=p.settle_seconds + 60)
    sending = False
    if not in_flight:
        all_seen.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_seen.wait(), p.settle_seconds)
    generator = meter.report()
    _close_stream(stream)
    commands.close()
    reads.close()

    accepted = [r for r in sent if r.status == 202]
    statuses = Counter(r.status for r in sent if r.status != 202)
    fresh_sse: list[float] = []
    seen_records: list[Sent] = []
    unseen = 0
    for record in accepted:
        seen_at = next((t for version, t in arrivals.get(record.item, ()) if version >= record.target), None)
        if seen_at is None:
            unseen += 1
        else:
            fresh_sse.append(seen_at - record.answered)
            seen_records.append(record)
    followed = [r for i, r in enumerate(sent) if i % p.get_every == 0 and r.status == 202]
    fresh_get = [r.visible_get - r.answered for r in followed if r.visible_get]
    # The same, from the moment the request was written: never negative, and not shortened when
    # the 202 itself is late (a change can be visible before its 202 arrives).
    sse_from_send = [t + r.answered - r.sent for t, r in zip(fresh_sse, seen_records, strict=True)]
    get_from_send = [r.visible_get - r.sent for r in followed if r.visible_get]
    send_span = max(last_scheduled - meter.wall_start, 1e-9)
    return {
        "offered_per_s": p.rate,
        "sent": len(sent),
        "sent_per_s": rate(len(sent), send_span),
        "accepted": len(accepted),
        "other_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "connection_errors": errors,
        "connections_opened": commands.opened,
        # From the moment the command was due, so a slow answer cannot hide queueing.
        "latency_202": summarize([r.answered - r.scheduled for r in accepted]),
        "send_lag": summarize([r.sent - r.scheduled for r in sent if r.sent]),
        "freshness_get": summarize(fresh_get),
        "freshness_sse": summarize(fresh_sse),
        "visible_get_from_send": summarize(get_from_send),
        "visible_sse_from_send": summarize(sse_from_send),
        "get_followed": len(followed),
        "get_unseen": len(followed) - len(fresh_get),
        "sse_unseen": unseen,
        "sse_before_202": sum(1 for value in fresh_sse if value < 0),
        "items_reused_in_flight": reused,
        "generator": generator,
        "window": meter.window,
        "command_ids": [r.command_id for r in accepted],
    }


def _close_stream(stream: SseProtocol) -> None:
    if stream.transport is not None:
        stream.transport.close()


# --- 4. reads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadLoad:
    url: str
    token: str
    paths: list[str]
    clients: int
    seconds: float  # 0: one pass over ``paths`` in random order, each path read exactly once
    warm: bool = False  # read every path once before measuring
    seed: int = 7
    pids: dict[str, int] = field(default_factory=dict)


def read_load(params: ReadLoad) -> Result:
    return run_async(_read_load(params))


async def _read_load(p: ReadLoad) -> Result:
    endpoint = Endpoint.parse(p.url)
    headers = _bearer(p.token)
    requests = [encode_request("GET", path, endpoint, headers) for path in p.paths]
    connections = await asyncio.gather(*(Connection.open(endpoint) for _ in range(p.clients)))
    if p.warm:
        await _one_pass(connections, list(requests), [], Counter())
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    meter = Meter(p.pids)
    if p.seconds > 0:
        deadline = meter.wall_start + p.seconds

        async def client(connection: Connection, rng: random.Random) -> None:
            while (started := time.monotonic()) < deadline:
                try:
                    response = await connection.request(rng.choice(requests))
                except HttpError:
                    statuses[-1] += 1
                    connection.close()
                    connection = await Connection.open(endpoint)
                    continue
                if response.status == 200:
                    latencies.append(time.monotonic() - started)
                else:
                    statuses[response.status] += 1
            connection.close()

        await asyncio.gather(*(client(c, random.Random(p.seed + i)) for i, c in enumerate(connections)))
    else:
        shuffled = list(requests)
        random.Random(p.seed).shuffle(shuffled)
        await _one_pass(connections, shuffled, latencies, statuses)
    generator = meter.report()
    for connection in connections:
        connection.close()
    return {
        "clients": p.clients,
        "requests": len(latencies),
        # -1: the connection failed (the request is retried on a new one).
        "requests_per_s": rate(len(latencies), generator["wall_seconds"]),
        "latency": summarize(latencies),
        "other_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "generator": generator,
        "window": meter.window,
    }


async def _one_pass(
    connections: list[Connection], requests: list[bytes], latencies: list[float], statuses: Counter[int]
) -> None:
    queue = deque(requests)

    async def client(connection: Connection) -> None:
        while queue:
            raw = queue.popleft()
            started = time.monotonic()
            try:
                response = await connection.request(raw)
            except HttpError:
                statuses[-1] += 1
                connection.close()
                connection = await Connection.open(connection.endpoint)
                continue
            if response.status == 200:
                latencies.append(time.monotonic() - started)
            else:
                statuses[response.status] += 1

    await asyncio.gather(*(client(c) for c in connections))


# --- 5. SSE subscribers ------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberLoad:
    url: str
    token: str
    count: int
    watch: list[str]  # item ids whose changes are timed
    connect_batch: int = 200


def subscribers(params: SubscriberLoad, pipe: multiprocessing.connection.Connection) -> None:
    """Hold ``count`` subscriptions; report ("ready", ...), then on ("stop", targets) the timings.

    ``targets`` maps an item id to (version, time of the 202): each subscriber's latency for it
    is the arrival of the first ``item`` event at that version or later, minus the 202 time.
    """
    _report(pipe, "done", lambda: run_async(_subscribers(params, pipe)))


async def _subscribers(p: SubscriberLoad, pipe: multiprocessing.connection.Connection) -> Result:
    endpoint = Endpoint.parse(p.url)
    watch = set(p.watch)
    arrivals: list[dict[str, list[tuple[int, float]]]] = [defaultdict(list) for _ in range(p.count)]

    def handler(index: int) -> Callable[[bytes, bytes, float], None]:
        mine = arrivals[index]

        def on_event(name: bytes, data: bytes, now: float) -> None:
            if name == b"item":
                change = _change.decode(data)
                if change.item_id in watch:
                    mine[change.item_id].append((change.version, now))

        return on_event

    streams: list[SseProtocol | None] = [None] * p.count
    failures: Counter[str] = Counter()
    connect_started = time.monotonic()
    for first in range(0, p.count, p.connect_batch):
        batch = range(first, min(first + p.connect_batch, p.count))
        opened = await asyncio.gather(
            *(open_stream(endpoint, STREAM_PATH, p.token, handler(i)) for i in batch), return_exceptions=True
        )
        for index, outcome in zip(batch, opened, strict=True):
            if isinstance(outcome, SseProtocol):
                streams[index] = outcome
            else:
                failures[type(outcome).__name__] += 1
    connect_seconds = time.monotonic() - connect_started
    meter = Meter()
    pipe.send(("ready", sum(1 for s in streams if s is not None)))
    message = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    targets: dict[str, tuple[int, float]] = message[1]
    generator = meter.report()
    latencies: list[float] = []
    missing = 0
    dropped = 0
    for stream, seen in zip(streams, arrivals, strict=True):
        if stream is None:
            continue
        if stream.lost.done():
            dropped += 1
        for item, (version, answered) in targets.items():
            arrived = next((t for v, t in seen.get(item, ()) if v >= version), None)
            if arrived is None:
                missing += 1
            else:
                latencies.append(arrived - answered)
    for stream in streams:
        if stream is not None:
            _close_stream(stream)
    return {
        "connected": sum(1 for s in streams if s is not None),
        "connect_failures": dict(failures),
        "connect_seconds": round(connect_seconds, 3),
        "disconnected": dropped,
        "latencies": latencies,
        "missing": missing,
        "generator": generator,
    }


class SubscriberProcesses:
    """Several subscriber processes, driven together."""

    def __init__(self, loads: list[SubscriberLoad]) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._processes: list[Any] = []
        for load in loads:
            parent, child = context.Pipe()
            process = context.Process(target=subscribers, args=(load, child), daemon=True)
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)

    def wait_ready(self, timeout: float) -> int:
        connected = 0
        for pipe in self._pipes:
            connected += int(self._receive(pipe, "ready", timeout))
        return connected

    def finish(self, targets: dict[str, tuple[int, float]], timeout: float = 120.0) -> list[Result]:
        for pipe in self._pipes:
            pipe.send(("stop", targets))
        return [dict(self._receive(pipe, "done", timeout)) for pipe in self._pipes]

    @staticmethod
    def _receive(pipe: multiprocessing.connection.Connection, expected: str, timeout: float) -> Any:
        if not pipe.poll(timeout):
            raise TimeoutError(f"subscriber process did not report {expected!r} within {timeout:.0f} s")
        try:
            kind, payload = pipe.recv()
        except EOFError:
            raise RuntimeError("a subscriber process died") from None
        if kind != expected:
            raise RuntimeError(f"subscriber process failed: {payload}")
        return payload

    def close(self) -> None:
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


async def gather_limited(coroutines: list[Awaitable[T]], limit: int) -> list[T]:
    """Await coroutines with at most ``limit`` running at once, results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(work: Awaitable[T]) -> T:
        async with semaphore:
            return await work

    return list(await asyncio.gather(*(one(c) for c in coroutines)))
