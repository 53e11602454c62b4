"""``python -m bench nodes``: the scaled-out deployment on this machine (docs/scaling.md).

A stack of its own: a broker, a redis-server, the listener (the only process with the source of
truth and the accounts) and query and command *nodes*, each with a data directory of its own
and ``INVENTORY_LISTENER_URL``. The query nodes share one address (``inventory serve
--shared-port``: SO_REUSEPORT, the kernel spreads new connections over them) and each also
listens on a port of its own; likewise the command nodes. Four parts, each reported on its own:

* ``reads``    - GET throughput and latency against one query node (its own port) and against
  the two behind the shared address: GET stock of one item and the first list page, closed loop;
* ``fanout``   - SSE subscribers split evenly over the query nodes (each node's own port); adjusts
  sent one at a time, each subscriber's delay from the 202 to its ``item`` event at that version;
* ``lag``      - replica lag: adjusts on a fixed schedule (open loop) to the command address, one
  SSE subscriber on each query node: from the 202 to the change on that node's stream (a node
  announces a change only once its replica applied it);
* ``catch_up`` - a listener of its own over a database of ``snapshot_levels`` stock levels
  written directly (as its schema has them), and a new query node with an empty data directory:
  the time from the node's start until its replica reports ``ok`` (snapshot downloaded,
  installed, following).

All times are ``time.monotonic()``, one clock for every process on Linux.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import random
import secrets
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import api, machine
from bench.bulk import fill_levels
from bench.compiled import Generator, find_hey
from bench.httpclient import ConnectionPool, Endpoint, HttpError, encode_request, open_stream
from bench.loadgen import (
    ITEMS_PATH,
    Meter,
    SubscriberLoad,
    SubscriberProcesses,
    _change,
    _close_stream,
    run_async,
    run_in_process,
)
from bench.report import table
from bench.stack import Broker, RedisProcess, Service, StartedStack, http_json
from bench.stack import free_port as any_free_port
from bench.stats import rate, summarize

Result = dict[str, Any]
READY_PATH = "/api/v1/ready"
LOCATIONS = ["MAIN", *(f"S{n:03d}" for n in range(1, 10))]  # the catch-up database: items x 10 levels


@dataclass(frozen=True)
class NodesSize:
    name: str
    query_nodes: int
    command_nodes: int
    items: int
    read_clients: int
    read_seconds: float
    read_warmup: float
    fanout_subscribers: int
    fanout_commands: int
    subscribers_per_process: int
    lag_rate: float  # commands per second, open loop
    lag_seconds: float
    snapshot_levels: int
    timeout: float  # for set-up waits and for the new node to catch up


NODES_SIZES = {
    "small": NodesSize("small", query_nodes=2, command_nodes=1, items=40, read_clients=16, read_seconds=1.0,
                       read_warmup=0.3, fanout_subscribers=40, fanout_commands=3, subscribers_per_process=20,
                       lag_rate=50.0, lag_seconds=1.0, snapshot_levels=2_000, timeout=180.0),
    "full": NodesSize("full", query_nodes=2, command_nodes=1, items=2_000, read_clients=64, read_seconds=10.0,
                      read_warmup=2.0, fanout_subscribers=5_000, fanout_commands=20, subscribers_per_process=2_500,
                      lag_rate=1_000.0, lag_seconds=10.0, snapshot_levels=1_000_000, timeout=1_800.0),
}  # fmt: skip


def log(message: str) -> None:
    print(f"[bench nodes {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the stack --------------------------------------------------------------------------------


class PortPicker:
    """Distinct free ports (two random picks could be the same port before anything binds it)."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def __call__(self, pair: bool = False) -> int:
        for _ in range(100):
            port = any_free_port(pair)
            if port not in self.taken and (not pair or port + 1 not in self.taken):
                self.taken.update({port, port + 1} if pair else {port})
                return port
        raise RuntimeError("no free port found")


class Node(Service):
    """A query or command node: its own port, and the address it shares with its peers."""

    def __init__(self, name: str, role: str, port: int, shared_port: int, env: dict[str, str], logs: Path) -> None:
        super().__init__(role, port, env, logs)
        self.name = name
        self.shared_port = shared_port
        self.argv = [*self.argv, "--shared-port", str(shared_port)]
        self.log_path = logs / f"{name}.log"

    def wait_replica(self, timeout: float) -> float | None:
        """Wait until the node's replica reports ``ok``; the time it did (None if /ready has no
        replica check: the node then counts as ready once healthy)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                _, body = http_json(f"{self.url}{READY_PATH}", timeout=2.0)
                replica = body.get("checks", {}).get("replica")
                if replica is None and body:
                    return None
                if replica is not None and replica.get("status") == "ok":
                    return time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}'s replica did not report ok within {timeout:.0f} s:\n{self.log_tail()}")


class NodesStack(StartedStack):
    """Broker, redis-server, the listener, and query and command nodes with data of their own."""

    def __init__(self, work_dir: Path, query_nodes: int, command_nodes: int) -> None:
        super().__init__("kafka", work_dir)
        port = PortPicker()
        self.port = port
        self.broker = Broker(port(pair=True), work_dir / "kafka")
        self.redis = RedisProcess(port(), work_dir / "redis", self.logs)
        self.kafka_bootstrap = self.broker.bootstrap
        self.redis_url = self.redis.url
        self.topic_prefix = f"bench{uuid.uuid4().hex[:10]}."
        # The listener's data directory holds the accounts (create_users writes them there).
        self.data_dir = work_dir / "listener"
        self.env.update(
            {
                "INVENTORY_DATA_DIR": str(self.data_dir),
                "INVENTORY_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                "INVENTORY_KAFKA_TOPIC_PREFIX": self.topic_prefix,
                "INVENTORY_REDIS_URL": self.redis.url,
            }
        )
        self.listener = Service("listener", port(), self.env, self.logs)
        self.listener_url = self.listener.url
        shared = {"query": port(), "command": port()}
        self.queries = [self.node(f"query{n}", "query", port(), shared["query"]) for n in range(1, query_nodes + 1)]
        self.commands = [
            self.node(f"command{n}", "command", port(), shared["command"]) for n in range(1, command_nodes + 1)
        ]
        self.query_url = f"http://127.0.0.1:{shared['query']}"
        self.command_url = f"http://127.0.0.1:{shared['command']}"
        self.services = {"listener": self.listener, **{n.name: n for n in (*self.queries, *self.commands)}}
        self.watched = [*self.services.values(), self.broker, self.redis]

    def node_env(self, name: str, listener_url: str, **extra: str) -> dict[str, str]:
        return {**self.env, "INVENTORY_DATA_DIR": str(self.work_dir / name), "INVENTORY_LISTENER_URL": listener_url,
                **extra}  # fmt: skip

    def node(self, name: str, role: str, port: int, shared_port: int) -> Node:
        return Node(name, role, port, shared_port, self.node_env(name, self.listener.url), self.logs)

    def start(self) -> None:
        assert self.broker is not None and self.redis is not None
        self.broker.start()
        self.redis.start()
        self.create_users()
        self.listener.start()
        self.listener.wait_healthy()
        self.listener.wait_consuming()
        nodes = [*self.commands, *self.queries]
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_healthy()
            node.wait_replica(120)


# --- the run ----------------------------------------------------------------------------------


class NodesBench:
    def __init__(self, stack: NodesStack, size: NodesSize, sections: dict[str, Result]) -> None:
        self.stack = stack
        self.size = size
        self.sections = sections  # filled as each part ends: an interrupted run keeps what it measured
        self.tokens: dict[str, str] = {}
        self.items: list[str] = []

    def section(self, name: str, body: Any) -> None:
        log(f"{name} ...")
        started = time.monotonic()
        try:
            result = body()
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"{name} failed: {result['error']}")
        result["section_seconds"] = round(time.monotonic() - started, 2)
        self.sections[name] = result

    def run(self) -> None:
        self.section("setup", self.setup)
        for name in ("reads", "fanout", "lag"):
            if "error" in self.sections["setup"]:
                self.sections[name] = {"skipped": "set-up failed"}
            else:
                self.section(name, getattr(self, name))
        self.section("catch_up", self.catch_up)

    def _pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.stack.services.values() if p.pid is not None}

    def _cpu(self) -> dict[str, float]:
        return {p.name: p.cpu() for p in self.stack.services.values()}

    def _cpu_since(self, before: dict[str, float], wall: float) -> Result:
        return {
            name: round(100 * max(0.0, cpu - before.get(name, 0.0)) / wall, 1) if wall else 0.0
            for name, cpu in self._cpu().items()
        }

    # --- set-up -------------------------------------------------------------------------------

    def setup(self) -> Result:
        # The accounts live on the listener; every node accepts its tokens (one secret).
        for role in ("manager", "clerk", "viewer"):
            name, password = self.stack.user(role)
            self.tokens[role] = run_async(api.login(self.stack.listener.url, name, password))
        started = time.monotonic()
        self.items = run_async(self._create())
        return {
            "items": len(self.items),
            "seconds": round(time.monotonic() - started, 2),
            "query_nodes": [n.name for n in self.stack.queries],
            "command_nodes": [n.name for n in self.stack.commands],
        }

    async def _create(self) -> list[str]:
        command = api.Client(self.stack.command_url, self.tokens["manager"])
        query = api.Client(self.stack.query_url, self.tokens["manager"])
        try:
            created = await api.create_items(command, self.size.items, f"NODES-{secrets.token_hex(3)}", 1_000_000)
            statuses = await api.wait_applied(query, [c.command_id for c in created], self.size.timeout)
        finally:
            command.close()
            query.close()
        refused = [s for s in statuses.values() if s != "applied"]
        if refused:
            raise RuntimeError(f"{len(refused)} item creates were not applied")
        return [c.item_id for c in created]

    async def _versions(self, url: str, items: list[str]) -> dict[str, int]:
        client = api.Client(url, self.tokens["viewer"])
        try:
            return await api.item_versions(client, items)
        finally:
            client.close()

    # --- reads --------------------------------------------------------------------------------

    def reads(self) -> Result:
        binary, how = find_hey(install=True)
        generator = Generator(binary, how)
        token = self.tokens["viewer"]
        paths = {
            "stock": f"{ITEMS_PATH}/{self.items[0]}/stock",
            "list": f"{ITEMS_PATH}?page=1&page_size=20",
        }
        targets = {"one_node": self.stack.queries[0].url, "shared_address": self.stack.query_url}
        measured: Result = {}
        for target, url in targets.items():
            for name, path in paths.items():
                before, started = self._cpu(), time.monotonic()
                result = generator.measure(url, token, path, self.size.read_clients, self.size.read_seconds, 200,
                                           warmup=self.size.read_warmup)  # fmt: skip
                result["server_cpu_percent"] = self._cpu_since(before, time.monotonic() - started)
                measured[f"{target}/{name}"] = result
                log(f"  {target:<15} {name:<6} {result['per_s']:>8}/s p99 {result['latency'].get('p99_ms')} ms")
        return {
            "load_generator": generator.name,
            # Not where it was found: no machine paths in a result.
            "load_generator_how": "found" if how.startswith("found") else how,
            "paths": {name: path.replace(self.items[0], "{id}") for name, path in paths.items()},
            "loads": measured,
        }

    # --- fan-out ------------------------------------------------------------------------------

    def fanout(self) -> Result:
        count, nodes = self.size.fanout_subscribers, self.stack.queries
        per_node = [count // len(nodes) + (1 if i < count % len(nodes) else 0) for i in range(len(nodes))]
        loads: list[SubscriberLoad] = []
        owners: list[str] = []
        watch = random.Random(count).sample(self.items, min(self.size.fanout_commands, len(self.items)))
        for node, share in zip(nodes, per_node, strict=True):
            processes = max(1, math.ceil(share / self.size.subscribers_per_process))
            for i in range(processes):
                part = share // processes + (1 if i < share % processes else 0)
                loads.append(SubscriberLoad(node.url, self.tokens["viewer"], part, watch))
                owners.append(node.name)
        versions = run_async(self._versions(self.stack.query_url, watch))
        spacing = 0.2 + count / 2500
        group = SubscriberProcesses(loads)
        try:
            connected = group.wait_ready(timeout=120 + count / 20)
            before, started = self._cpu(), time.monotonic()
            targets = run_async(self._one_by_one(watch, versions, spacing))
            time.sleep(2.0 + spacing)
            cpu = self._cpu_since(before, time.monotonic() - started)
            reports = group.finish(targets)
        finally:
            group.close()
        by_node: dict[str, list[float]] = defaultdict(list)
        for owner, report in zip(owners, reports, strict=True):
            by_node[owner].extend(report["latencies"])
        latencies = [value for values in by_node.values() for value in values]
        result = {
            "subscribers": count,
            "per_node": dict(zip([n.name for n in nodes], per_node, strict=True)),
            "processes": len(loads),
            "connected": connected,
            "connect_seconds": max(report["connect_seconds"] for report in reports),
            "disconnected": sum(report["disconnected"] for report in reports),
            "commands": len(targets),
            "command_spacing_seconds": round(spacing, 3),
            "deliveries": len(latencies),
            "missing": sum(report["missing"] for report in reports),
            "latency": summarize(latencies),
            "latency_by_node": {name: summarize(values) for name, values in sorted(by_node.items())},
            "server_cpu_percent": cpu,
        }
        log(f"  {count} subscribers: p99 {result['latency'].get('p99_ms')} ms, missing {result['missing']}")
        return result

    async def _one_by_one(
        self, items: list[str], versions: dict[str, int], spacing: float
    ) -> dict[str, tuple[int, float]]:
        client = api.Client(self.stack.command_url, self.tokens["clerk"])
        targets: dict[str, tuple[int, float]] = {}
        try:
            for item in items:
                response = await client.call("POST", f"{ITEMS_PATH}/{item}/adjust", {"quantity": 1})
                answered = time.monotonic()
                if response.status != 202:
                    raise api.ApiFailure(f"adjust {item}: HTTP {response.status} {response.body[:200]!r}")
                targets[item] = (versions[item] + 1, answered)
                await asyncio.sleep(spacing)
        finally:
            client.close()
        return targets

    # --- replica lag --------------------------------------------------------------------------

    def lag(self) -> Result:
        versions = run_async(self._versions(self.stack.query_url, self.items))
        load = LagLoad(
            command_url=self.stack.command_url,
            streams={node.name: node.url for node in self.stack.queries},
            clerk_token=self.tokens["clerk"],
            viewer_token=self.tokens["viewer"],
            items=[(item, versions[item]) for item in self.items],
            rate=self.size.lag_rate,
            seconds=self.size.lag_seconds,
            pids=self._pids(),
        )
        result = run_in_process(lag_load, load, timeout=load.seconds + load.settle_seconds + 240)
        log(f"  {load.rate:.0f}/s offered: lag p99 {result['lag'].get('p99_ms')} ms, unseen {result['unseen']}")
        return result

    # --- a new node from a snapshot -----------------------------------------------------------

    def catch_up(self) -> Result:
        """A listener of its own (own data directory and topics) over a database written directly,
        then a new query node with an empty data directory: from its start to replica ``ok``."""
        stack = self.stack
        root = stack.work_dir / "catch-up"
        data = root / "listener"
        data.mkdir(parents=True, exist_ok=True)
        items = max(1, self.size.snapshot_levels // len(LOCATIONS))
        started = time.monotonic()
        asyncio.run(fill_levels(data / "inventory.db", items, LOCATIONS))
        fill_seconds = time.monotonic() - started
        env = {**stack.env, "INVENTORY_DATA_DIR": str(data), "INVENTORY_KAFKA_TOPIC_PREFIX": f"{stack.topic_prefix}cu."}
        listener = Service("listener", stack.port(), env, root)
        node = Node("query-new", "query", stack.port(), stack.port(), {**env, "INVENTORY_DATA_DIR": str(root / "node"),
                    "INVENTORY_LISTENER_URL": listener.url}, root)  # fmt: skip
        try:
            listener.start()
            listener.wait_healthy(timeout=self.size.timeout)
            listener.wait_consuming(timeout=self.size.timeout)
            node_started = time.monotonic()
            node.start()
            node.wait_healthy(timeout=self.size.timeout)
            healthy = time.monotonic()
            ready = node.wait_replica(self.size.timeout)
            caught_up = ready or time.monotonic()
            status, body = http_json(f"{node.url}{READY_PATH}", timeout=5.0)
            replica = body.get("checks", {}).get("replica", {})
            levels = self._count_levels(root / "node")
        finally:
            node.stop()
            listener.stop()
        db = data / "inventory.db"
        return {
            "levels": items * len(LOCATIONS),
            "items": items,
            "fill_seconds": round(fill_seconds, 1),
            "database_mib": round(db.stat().st_size / 2**20, 1) if db.exists() else None,
            "node_start_to_healthy_seconds": round(healthy - node_started, 2),
            "node_start_to_caught_up_seconds": round(caught_up - node_started, 2),
            "replica_check_reported": ready is not None,
            "replica": replica,
            "replica_levels": levels,
            "ready_status": status,
        }

    @staticmethod
    def _count_levels(node_dir: Path) -> int | None:
        import sqlite3

        path = node_dir / "replica.db"
        if not path.exists():
            return None
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM stock_levels").fetchone()[0])
        finally:
            conn.close()


# --- the lag workload (a process of its own) ---------------------------------------------------


@dataclass(frozen=True)
class LagLoad:
    command_url: str
    streams: dict[str, str]  # query node -> its own URL
    clerk_token: str
    viewer_token: str
    items: list[tuple[str, int]]  # item id and its current version
    rate: float
    seconds: float
    settle_seconds: float = 30.0
    max_connections: int = 2_000
    pids: dict[str, int] | None = None


def lag_load(params: LagLoad) -> Result:
    return run_async(_lag_load(params))


async def _lag_load(p: LagLoad) -> Result:
    """Adjusts on a schedule, each on an item with no command in flight when there is one (so the
    version it makes is known); for every node, when its stream shows that version."""
    commands = ConnectionPool(Endpoint.parse(p.command_url), p.max_connections)
    await commands.fill(min(64, p.max_connections))
    headers = {"Authorization": f"Bearer {p.clerk_token}", "Content-Type": "application/json"}
    adjust = {item: encode_request("POST", f"{ITEMS_PATH}/{item}/adjust", commands.endpoint, headers,
                                   b'{"quantity":1}') for item, _ in p.items}  # fmt: skip
    arrivals: dict[str, dict[str, list[tuple[int, float]]]] = {name: defaultdict(list) for name in p.streams}

    def handler(name: str) -> Any:
        mine = arrivals[name]

        def on_event(kind: bytes, data: bytes, now: float) -> None:
            if kind == b"item":
                change = _change.decode(data)
                mine[change.item_id].append((change.version, now))

        return on_event

    streams = [
        await open_stream(Endpoint.parse(url), "/api/v1/inventory/stream", p.viewer_token, handler(name))
        for name, url in p.streams.items()
    ]
    versions = dict(p.items)
    assigned: Counter[str] = Counter()
    free = deque(item for item, _ in p.items)
    in_flight: Counter[str] = Counter()
    records: list[tuple[str, int, float, float]] = []  # item, version, when it was due, its 202
    statuses: Counter[int] = Counter()
    tasks: set[asyncio.Task[None]] = set()

    async def send(item: str, target: int, scheduled: float) -> None:
        try:
            response = await commands.request(adjust[item])
        except HttpError:
            statuses[-1] += 1
            return
        finally:
            in_flight[item] -= 1
            if not in_flight[item]:
                free.append(item)
        statuses[response.status] += 1
        if response.status == 202:
            records.append((item, target, scheduled, time.monotonic()))
        else:
            assigned[item] -= 1

    meter = Meter(p.pids or {})
    count = max(1, int(p.rate * p.seconds))
    start = meter.wall_start + 0.01
    reused = 0
    for index in range(count):
        scheduled = start + index / p.rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if free:
            item = free.popleft()
        else:  # every item has a command in flight: the 202 order may then not be the version order
            item, reused = random.choice(list(in_flight)), reused + 1
        in_flight[item] += 1
        assigned[item] += 1
        task = asyncio.create_task(send(item, versions[item] + assigned[item], scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    send_seconds = time.monotonic() - meter.wall_start
    if tasks:
        await asyncio.wait(set(tasks), timeout=p.settle_seconds + 60)

    def seen(name: str, item: str, version: int) -> float | None:
        return next((t for v, t in arrivals[name].get(item, ()) if v >= version), None)

    # A node's stream may still be behind: poll (cheaply) until it shows every change, or settle.
    for _ in range(int(p.settle_seconds * 10)):
        if all(seen(name, item, version) is not None for name in p.streams for item, version, _, _ in records):
            break
        await asyncio.sleep(0.1)
    generator = meter.report()
    for stream in streams:
        _close_stream(stream)
    commands.close()
    lags: dict[str, list[float]] = {name: [] for name in p.streams}
    from_due: list[float] = []
    unseen = 0
    for name in p.streams:
        for item, version, scheduled, answered in records:
            arrived = seen(name, item, version)
            if arrived is None:
                unseen += 1
            else:
                lags[name].append(arrived - answered)
                from_due.append(arrived - scheduled)
    every = [value for values in lags.values() for value in values]
    return {
        "offered_per_s": p.rate,
        "sent": count,
        "sent_per_s": rate(count, send_seconds),
        "accepted": len(records),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "items_reused_in_flight": reused,
        # From the 202 to the change on each node's stream; negative when the change was on the
        # stream before its 202 arrived.
        "lag": summarize(every),
        "lag_by_node": {name: summarize(values) for name, values in lags.items()},
        # From the moment the command was due (never negative): a late 202 cannot hide the lag.
        "lag_from_due": summarize(from_due),
        "latency_202": summarize([answered - scheduled for _, _, scheduled, answered in records]),
        "unseen": unseen,
        "generator": generator,
        "window": meter.window,
    }


# --- command line -----------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    nodes = commands.add_parser(
        "nodes", help="query and command nodes with data of their own: reads, fan-out, replica lag, catch-up"
    )
    nodes.add_argument("--size", choices=sorted(NODES_SIZES), default="small")
    nodes.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    nodes.add_argument("--work-dir", type=Path, help="for the started stack (default: a new temporary directory)")
    nodes.add_argument("--keep", action="store_true", help="keep the work directory (data, logs) afterwards")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_nodes(args: argparse.Namespace, source: Result) -> int:
    size = NODES_SIZES[args.size]
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_at_start = os.getloadavg()
    started = time.monotonic()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="inventory-nodes-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    stack = NodesStack(work_dir, size.query_nodes, size.command_nodes)
    sections: dict[str, Result] = {}
    problem: str | None = None
    try:
        log(f"starting a listener, {size.query_nodes} query nodes and {size.command_nodes} command nodes")
        stack.start()
        NodesBench(stack, size, sections).run()
    except BaseException as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        log("stopping the stack")
        stack.stop()
        failed = problem is not None or any("error" in section for section in sections.values())
        if args.keep or failed:
            log(f"work directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
        result = {
            "machine": machine.describe("kafka"),
            "run": {
                "kind": "nodes",
                "mode": "kafka",
                "size": size.name,
                "started_at": started_at,
                "duration_seconds": round(time.monotonic() - started, 1),
                **source,
                "command": _command(args),
                "sizes": asdict(size),
                "interrupted": problem,
                "load_average_at_start": [round(v, 2) for v in load_at_start],
                "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            },
            "sections": sections,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print()
        print(render(sections))
        print(f"\nresult written to {args.out}")
    return 2 if failed else 0


def _command(args: argparse.Namespace) -> str:
    """How to run it again, without this machine's paths (the output file by its name only)."""
    return f"python -m bench nodes --size {args.size} --out {args.out.name}"


READ_HEADERS = ("target/path", "clients", "requests", "per_s", "p50_ms", "p99_ms", "other")
FANOUT_HEADERS = ("node", "subscribers", "deliveries", "p50_ms", "p99_ms")
LAG_HEADERS = ("node", "changes", "p50_ms", "p99_ms", "max_ms")
CATCH_UP_HEADERS = ("levels", "db_mib", "healthy_s", "caught_up_s", "replica_levels")


def render(sections: dict[str, Result]) -> str:
    out = [
        f"{name}: {section.get('error') or section.get('skipped')}"
        for name, section in sections.items()
        if "error" in section or "skipped" in section
    ]
    reads = sections.get("reads", {})
    if "loads" in reads:
        rows: list[list[Any]] = []
        for name, load in reads["loads"].items():
            latency = load["latency"]
            rows.append([name, load["clients"], load["requests"], load["per_s"], latency.get("p50_ms"),
                         latency.get("p99_ms"), load["other_statuses"] or "-"])  # fmt: skip
        title = f"GET, one query node and two behind one address ({reads['load_generator']})"
        out.append(table(title, READ_HEADERS, rows))
    fanout = sections.get("fanout", {})
    if "latency" in fanout:
        rows = [
            [name, fanout["per_node"].get(name), summary.get("n"), summary.get("p50_ms"), summary.get("p99_ms")]
            for name, summary in fanout["latency_by_node"].items()
        ]
        total = fanout["latency"]
        rows.append(["all", fanout["subscribers"], fanout["deliveries"], total.get("p50_ms"), total.get("p99_ms")])
        out.append(table(f"SSE fan-out (missing {fanout['missing']})", FANOUT_HEADERS, rows))
    lag = sections.get("lag", {})
    if "lag" in lag:
        rows = [
            [name, s.get("n"), s.get("p50_ms"), s.get("p99_ms"), s.get("max_ms")]
            for name, s in lag["lag_by_node"].items()
        ]
        due, answered = lag["lag_from_due"], lag["latency_202"]
        rows.append(["all, from due", due.get("n"), due.get("p50_ms"), due.get("p99_ms"), due.get("max_ms")])
        rows.append(["202 itself", answered.get("n"), answered.get("p50_ms"), answered.get("p99_ms"),
                     answered.get("max_ms")])  # fmt: skip
        title = f"Replica lag at {lag['offered_per_s']:.0f} commands/s offered, from each 202"
        title += f" (sent {lag['sent_per_s']}/s, unseen {lag['unseen']})"
        out.append(table(title, LAG_HEADERS, rows))
    catch_up = sections.get("catch_up", {})
    if "levels" in catch_up:
        row = [catch_up["levels"], catch_up["database_mib"], catch_up["node_start_to_healthy_seconds"],
               catch_up["node_start_to_caught_up_seconds"], catch_up["replica_levels"]]  # fmt: skip
        out.append(table("A new query node from a snapshot", CATCH_UP_HEADERS, [row]))
    return "\n\n".join(out)
