"""One benchmark run: set up the item pool, measure each section, check correctness, report.

Sections (each a key of the result's ``sections``):

* ``commands``  - closed-loop command accept rate and 202 latency per number of clients;
* ``freshness`` - open loop: 202 -> visible on GET and on SSE, per offered load;
* ``reads``     - GET stock and GET list with a hot cache, a cold one, and Redis stopped;
* ``fanout``    - 202 -> every SSE subscriber has the change, per number of subscribers;
* ``catch_up``  - the listener's apply rate on a backlog produced while it was stopped;
* ``resources`` - peak RSS and CPU of every process, the load generator included;
* ``correctness`` - oversold, lost, applied twice, and the topics against the outcomes.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
import sqlite3
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import Any

from bench import api, backlog, checks
from bench.compiled import Generator, find_hey
from bench.loadgen import (
    ITEMS_PATH,
    CommandLoad,
    OpenLoad,
    ReadLoad,
    SubscriberLoad,
    SubscriberProcesses,
    command_id_of,
    command_load,
    open_load,
    read_load,
    run_async,
    run_in_process,
)
from bench.procs import cpu_spent_since, current_rss_kib, host_busy_seconds, other_cpu_seconds, process_tree
from bench.sizes import Size
from bench.stack import Stack, http_json
from bench.stats import summarize
from bench.versus import VERSUS_ROWS

SECTIONS = ("memory", "versus", "commands", "freshness", "reads", "fanout", "catch_up", "store_day")
# A store's day on the bench items: each round ships, receives short, moves, counts, reserves
# (one to expire, one to commit, one to cancel), all checked by the correctness section.
STORE_DAY_CLIENTS = 16
STORE = "S001"
START_QUANTITY = 1_000_000
LIST_PATH = f"{ITEMS_PATH}?page=1&page_size=20"
# CPU of other user processes on the machine (not the stack, not the harness and its load
# generator), in % of one core, above which a measurement is marked as disturbed.
DISTURBED_PERCENT = 25.0
HOST = "host"
# A listener that applies nothing for this long while it has a backlog is stuck (or crashed).
STALL_SECONDS = 60.0

Result = dict[str, Any]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Harness:
    def __init__(self, stack: Stack, size: Size, only: set[str], client: str = "hey") -> None:
        self.stack = stack
        self.client = client
        self.size = size
        self.only = only
        self.tokens: dict[str, str] = {}
        self.items: list[str] = []
        self.cold_items: list[str] = []
        # Every command id that got a 202, or that the harness produced into the log itself.
        self.accepted: set[str] = set()
        self.sections: dict[str, Result] = {}
        self.failed = False
        self._others: dict[int, float] = {}  # other processes' CPU at the last ``_cpu()``

    # --- the run ------------------------------------------------------------------------

    def run(self) -> dict[str, Result]:
        self._section("setup", self.setup)
        if "setup" in self.sections and "error" not in self.sections["setup"]:
            for name in SECTIONS:
                if name in self.only:
                    self._section(name, getattr(self, name))
                else:
                    self.sections[name] = {"skipped": "not selected (--only)"}
        else:
            for name in SECTIONS:
                self.sections[name] = {"skipped": "set-up failed"}
        self._section("correctness", self.correctness)
        self._section("resources", self.resources)
        return self.sections

    def _section(self, name: str, body: Callable[[], Result]) -> None:
        log(f"{name} ...")
        started = time.monotonic()
        try:
            result = body()
        except Exception as exc:
            self.failed = True
            result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            log(f"{name} failed: {type(exc).__name__}: {exc}")
        result.setdefault("section_seconds", round(time.monotonic() - started, 2))
        self.sections[name] = result

    # --- helpers ------------------------------------------------------------------------

    def _client(self, role: str, service: str = "command") -> api.Client:
        url = self.stack.command_url if service == "command" else self.stack.query_url
        return api.Client(url, self.tokens[role])

    def _cpu(self) -> dict[str, float]:
        used = {process.name: process.cpu() for process in self.stack.watched}
        used[HOST] = host_busy_seconds()
        self._others = other_cpu_seconds(self._pids().values())
        return used

    def _others_percent(self, before: dict[int, float], wall: float) -> float:
        spent = cpu_spent_since(before, other_cpu_seconds(self._pids().values()))
        return round(100 * spent / wall, 1) if wall else 0.0

    def _cpu_since(self, before: dict[str, float], wall: float) -> dict[str, Result]:
        """CPU per process of the stack since ``before`` (100 % = one core), without the host."""
        used: dict[str, Result] = {}
        for name, cpu in self._cpu().items():
            spent = max(0.0, cpu - before.get(name, 0.0))
            used[name] = {"cpu_seconds": round(spent, 2), "cpu_percent": round(100 * spent / wall, 1) if wall else 0}
        return used

    def _measure(self, work: Callable[[], Result]) -> Result:
        """Run a workload and add the CPU the services used meanwhile (100 % = one core), and how
        busy the rest of the machine was: other work on the host disturbs every figure."""
        before = self._cpu()
        started = time.monotonic()
        result = work()
        self._account(result, before, time.monotonic() - started)
        ids = result.pop("command_ids", None)
        if ids:
            self.accepted.update(ids)
        return result

    def _pids(self) -> dict[str, int]:
        return {process.name: process.pid for process in self.stack.watched if process.pid is not None}

    def _account(self, result: Result, before: dict[str, float], wall: float) -> None:
        """Add ``server_cpu`` and ``host_cpu``: from the workload's own measured window when it
        reports one, else from the harness's view around it."""
        window = result.pop("window", None)
        if window:
            used = window["server_cpu"]
            host_percent = window["host_busy_percent"]
            other = window["other_processes_percent"]
        else:
            others_before = self._others
            used = self._cpu_since(before, wall)
            host_percent = used.pop(HOST)["cpu_percent"]
            other = self._others_percent(others_before, wall)
        result["server_cpu"] = used
        result["host_cpu"] = {
            # The whole machine (100 % = one core): the stack, the load generator, the harness,
            # the kernel's work for them, and anything else.
            "busy_percent": host_percent,
            # User processes that are neither the stack nor the harness and its load generator.
            "other_processes_percent": other,
        }
        if other > DISTURBED_PERCENT:
            result["disturbed"] = True
            log(f"  warning: other processes used {other:.0f}% of a core meanwhile; this figure is disturbed")

    def _versions(self, items: list[str]) -> dict[str, int]:
        if self.stack.data_dir is not None:
            conn = checks.read_only(self.stack.data_dir / "inventory.db")
            try:
                wanted = set(items)
                return {i: v for i, v in conn.execute("SELECT id, version FROM items") if i in wanted}
            finally:
                conn.close()
        return run_async(api.item_versions(self._client("viewer", "query"), items))

    def drain(self, timeout: float | None = None) -> float:
        """Wait until the listener has applied everything accepted so far; the seconds it took."""
        limit = self.size.drain_timeout if timeout is None else timeout
        started = time.monotonic()
        if self.stack.data_dir is not None:
            done, _ = checks.wait_drained(self.stack.data_dir, len(self.accepted), limit)
            while done and checks.missing_outcomes(self.stack.data_dir, self.accepted) > 0:
                if time.monotonic() - started > limit:
                    done = False
                    break
                time.sleep(0.2)
            if not done:
                raise TimeoutError(f"the listener did not apply every accepted command within {limit:.0f} s")
        else:
            sample = random.Random(3).sample(sorted(self.accepted), min(500, len(self.accepted)))
            run_async(api.wait_applied(self._client("manager", "query"), sample, limit))
        return round(time.monotonic() - started, 2)

    # --- set-up -------------------------------------------------------------------------

    def setup(self) -> Result:
        for role in ("manager", "clerk", "viewer"):
            name, password = self.stack.user(role)
            self.tokens[role] = run_async(api.login(self.stack.command_url, name, password))
        total = self.size.items + self.size.cold_items
        started = time.monotonic()

        async def create() -> list[api.CreatedItem]:
            manager = self._client("manager")
            # A command's status is for its author (and managers): the manager asks the query side.
            reader = self._client("manager", "query")
            try:
                created = await api.create_items(manager, total, f"BENCH-{secrets.token_hex(4)}", START_QUANTITY)
                statuses = await api.wait_applied(reader, [c.command_id for c in created], self.size.drain_timeout)
            finally:
                manager.close()
                reader.close()
            rejected = [s for s in statuses.values() if s != "applied"]
            if rejected:
                raise RuntimeError(f"{len(rejected)} of the item creates were not applied: {rejected[:5]}")
            return created

        created = run_async(create())
        seconds = time.monotonic() - started
        self.accepted.update(c.command_id for c in created)
        self.items = [c.item_id for c in created[: self.size.items]]
        self.cold_items = [c.item_id for c in created[self.size.items :]]
        return {
            "items": len(self.items),
            "cold_items": len(self.cold_items),
            "seconds": round(seconds, 2),
            "creates_applied_per_s": round(total / seconds, 1),
        }

    # --- memory with a real catalogue -------------------------------------------------------

    def memory(self) -> Result:
        """Each role's resident memory once the catalogue holds ``memory_items`` more items, every
        one applied and read once (so caches and the query processes' held answers are filled as
        a day of reads fills them). Measured first, before the live streams of the fan-out."""
        stack = self.stack
        if not stack.started or stack.data_dir is None:
            return {"skipped": "needs a stack the harness started (it writes into its command topics)"}
        count = self.size.memory_items
        messages, command_ids, item_ids = backlog.creates(count, f"MEM{secrets.token_hex(3).upper()}")
        if stack.mode == "kafka":
            assert stack.kafka_bootstrap is not None
            event_log = backlog.kafka_log(stack.kafka_bootstrap, stack.topic_prefix)
        else:
            return {"skipped": "the embedded log's file is the running process's own"}
        run_async(backlog.produce(event_log, messages))
        self.accepted.update(command_ids)
        applied_in = self.drain()
        load = ReadLoad(
            stack.query_url, self.tokens["viewer"], [f"{ITEMS_PATH}/{item}/stock" for item in item_ids],
            self.size.read_clients, 0, False, pids=self._pids(),
        )  # fmt: skip
        reads = self._measure(partial(run_in_process, read_load, load, 900))
        items_total = checks.item_count(stack.data_dir)
        rss = {
            process.name: round(max(current_rss_kib(pid) or 0 for pid in process_tree(process.pid)) / 1024, 1)
            for process in stack.watched
            if process.pid is not None
        }
        log(f"  {items_total} items; RSS MiB: " + ", ".join(f"{name} {mib}" for name, mib in rss.items()))
        return {
            "items": items_total,
            "created": count,
            "applied_seconds": applied_in,
            "read_once_per_s": reads.get("requests_per_s"),
            "rss_mib": rss,
            "note": "VmRSS of each role's largest process (a query worker counts alone) after every item was read once",
        }

    # --- 0. side by side with the Go prototypes (a compiled client) ------------------------

    def versus(self) -> Result:
        """The Go prototypes' table, measured the same way: one URL per workload, closed loop,
        ``hey`` (or the Python generator with ``--client python``)."""
        binary, how = find_hey(install=True) if self.client == "hey" else (None, "asked for --client python")
        generator = Generator(binary, how)
        log(f"  load generator: {generator.name} ({how})")
        item = self.items[0]
        rows: list[Result] = []
        for row in VERSUS_ROWS:
            url = self.stack.query_url if row.service == "query" else self.stack.command_url
            token = self.tokens["viewer" if row.service == "query" else "clerk"]
            body = json.dumps(row.body).encode() if row.body is not None else None
            result = self._measure(
                partial(
                    generator.measure,
                    url,
                    token,
                    row.path.format(item=item),
                    row.clients,
                    self.size.versus_seconds,
                    row.ok,
                    body,
                    self.size.versus_seconds / 5,
                )
            )
            result.update(row.describe())
            result["target_met"] = row.met(result)
            log(
                f"  {row.name:<28} {result['per_s']:>9} /s, p50 {result['latency'].get('p50_ms')} ms, "
                f"p99 {result['latency'].get('p99_ms')} ms  (target {'met' if result['target_met'] else 'missed'})"
            )
            rows.append(result)
            if row.service == "command":
                self.drain()
        return {"client": generator.name, "client_found": how, "rows": rows}

    # --- 1. commands --------------------------------------------------------------------

    def commands(self) -> Result:
        levels = []
        for clients in self.size.command_clients:
            load = CommandLoad(
                self.stack.command_url,
                self.tokens["clerk"],
                self.items,
                clients,
                self.size.command_seconds,
                pids=self._pids(),
            )
            result = self._measure(partial(run_in_process, command_load, load, load.seconds + 180))
            # The listener's backlog after the run: how long it needed to apply what was accepted.
            result["listener_drain_seconds"] = self.drain()
            log(
                f"  {clients:>4} clients: {result['accepted_per_s']:>8} accepted/s, "
                f"p50 {result['latency_202'].get('p50_ms')} ms, p99 {result['latency_202'].get('p99_ms')} ms"
            )
            levels.append(result)
        return {"workload": "POST adjust +1 (50%) / reserve 1 (30%) / release 1 (20%), closed loop", "levels": levels}

    # --- a store's day ---------------------------------------------------------------------

    def store_day(self) -> Result:
        """Every store-day command in rounds, each round on one item by one client, so that the
        correctness section checks transfers, counts and reservations (expiries included) too."""
        seconds = self.size.command_seconds
        counts: dict[str, int] = {}
        latencies: list[float] = []

        async def post(client: api.Client, item: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
            started = time.perf_counter()
            response = await client.call("POST", f"{ITEMS_PATH}/{item}/{name}", body)
            latencies.append(time.perf_counter() - started)
            key = f"{name} {response.status}"
            counts[key] = counts.get(key, 0) + 1
            if response.status != 202:
                return {}
            answer: dict[str, Any] = json.loads(response.body)
            self.accepted.add(answer["command_id"])
            return answer

        async def day(client: api.Client, worker: int, deadline: float) -> int:
            rounds = 0
            while time.monotonic() < deadline:
                item = self.items[(worker + rounds * STORE_DAY_CLIENTS) % len(self.items)]
                tag = f"{worker}-{rounds}-{secrets.token_hex(3)}"
                shipped = await post(
                    client, item, "ship", {"quantity": 2, "from_location": "MAIN", "to_location": STORE}
                )
                if "transfer_id" in shipped:
                    await post(client, item, "receive", {"transfer_id": shipped["transfer_id"], "received": 1})
                await post(client, item, "transfer", {"quantity": 1, "from_location": STORE, "to_location": "MAIN"})
                await post(client, item, "count", {"counted": START_QUANTITY, "location": "MAIN"})
                await post(client, item, "reserve", {"quantity": 1, "reference": f"EXP-{tag}", "expires_in": 1})
                held = await post(client, item, "reserve", {"quantity": 1})
                if "reservation_id" in held:
                    await post(client, item, "commit-reservation", {"reservation_id": held["reservation_id"]})
                ordered = await post(client, item, "reserve", {"quantity": 1, "reference": f"ORD-{tag}"})
                if "reservation_id" in ordered:
                    await post(client, item, "cancel-reservation", {"reservation_id": ordered["reservation_id"]})
                await post(client, item, "adjust", {"quantity": 1, "reason": "received", "note": "bench"})
                rounds += 1
            return rounds

        async def run() -> int:
            client = self._client("clerk")
            deadline = time.monotonic() + seconds
            try:
                return sum(await asyncio.gather(*(day(client, n, deadline) for n in range(STORE_DAY_CLIENTS))))
            finally:
                client.close()

        started = time.monotonic()
        rounds = run_async(run())
        wall = time.monotonic() - started
        # Let the one-second reservations expire and their expiries be applied before the checks.
        time.sleep(3)
        drain = self.drain()
        result: Result = {
            "workload": "per round: ship 2, receive 1 (1 lost), transfer 1 back, count, reserve to expire in 1 s, "
            f"reserve + commit, reserve + cancel, adjust +1 received; {STORE_DAY_CLIENTS} clients, closed loop",
            "rounds": rounds,
            "commands_per_s": round(sum(counts.values()) / wall, 1),
            "answers": dict(sorted(counts.items())),
            "latency_202": summarize(latencies),
            "listener_drain_seconds": drain,
        }
        log(f"  {rounds} rounds, {result['commands_per_s']} commands/s")
        return result

    # --- 3. freshness -------------------------------------------------------------------

    def freshness(self) -> Result:
        loads = []
        for offered in self.size.freshness_rates:
            versions = self._versions(self.items)
            load = OpenLoad(
                command_url=self.stack.command_url,
                query_url=self.stack.query_url,
                clerk_token=self.tokens["clerk"],
                viewer_token=self.tokens["viewer"],
                items=[(item, versions[item]) for item in self.items],
                rate=float(offered),
                seconds=self.size.freshness_seconds,
                get_every=max(1, round(offered / self.size.freshness_get_samples_per_second)),
                poll_seconds=self.size.freshness_poll_seconds,
                pids=self._pids(),
            )
            timeout = load.seconds + load.settle_seconds + 240
            result = self._measure(partial(run_in_process, open_load, load, timeout))
            result["listener_drain_seconds"] = self.drain()
            log(
                f"  {offered:>5}/s offered: GET p50 {result['freshness_get'].get('p50_ms')} ms, "
                f"SSE p50 {result['freshness_sse'].get('p50_ms')} ms p99 {result['freshness_sse'].get('p99_ms')} ms"
            )
            loads.append(result)
        return {
            "workload": "POST adjust +1, open loop on a schedule; GET polling on a sample, one SSE subscriber",
            "loads": loads,
        }

    # --- 4. reads -----------------------------------------------------------------------

    def reads(self) -> Result:
        stock = [f"{ITEMS_PATH}/{item}/stock" for item in self.items]
        cold_stock = [f"{ITEMS_PATH}/{item}/stock" for item in self.cold_items]
        cases: list[Result] = []

        def measure(cache: str, endpoint: str, paths: list[str], seconds: float, warm: bool) -> None:
            load = ReadLoad(
                self.stack.query_url,
                self.tokens["viewer"],
                paths,
                self.size.read_clients,
                seconds,
                warm,
                pids=self._pids(),
            )
            result = self._measure(partial(run_in_process, read_load, load, 600))
            result.update({"cache": cache, "endpoint": endpoint, "pass": "one read per item" if not seconds else None})
            log(
                f"  {cache:<12} {endpoint:<6} {result['requests_per_s']:>8} req/s, "
                f"p50 {result['latency'].get('p50_ms')} ms, p99 {result['latency'].get('p99_ms')} ms"
            )
            cases.append(result)

        seconds = self.size.read_seconds
        measure("hot", "stock", stock, seconds, True)
        measure("hot", "list", [LIST_PATH], seconds, True)
        notes: dict[str, str] = {
            "list": "the list is answered from the query process's held answer until the next change is announced "
            "(app/queries/answer_cache.py); the first read after a change reads SQLite",
        }
        if self.stack.redis_url:
            import redis

            redis.Redis.from_url(self.stack.redis_url).flushall()
            notes["cold"] = "Redis flushed (FLUSHALL), then each never-read item read once"
        else:
            notes["cold"] = (
                "each never-read item read once; the in-process cache is filled by the listener on every "
                "commit, so these reads find their item in it"
            )
        measure("cold", "stock", cold_stock, 0, False)
        measure("cold", "list", [LIST_PATH], seconds, False)
        if self.stack.redis_url and self.stack.started:
            self.stack.stop_redis()
            try:
                measure("redis-down", "stock", stock, seconds, False)
                measure("redis-down", "list", [LIST_PATH], seconds, False)
            finally:
                self.stack.start_redis()
            notes["redis-restart"] = (
                "redis-server started again; time until reads use it and changes flow again: "
                + json.dumps(self._wait_cache_back())
            )
        else:
            notes["redis-down"] = "not measured: " + (
                "the embedded mode has no Redis" if not self.stack.redis_url else "needs a stack the harness started"
            )
        return {"clients": self.size.read_clients, "cases": cases, "notes": notes}

    def _wait_cache_back(self) -> Result:
        """Wait until the query service uses Redis again and the listener announces changes again:
        after a Redis restart the listener refills the whole cache before it publishes anything,
        and the next section must not measure that pause."""
        started = time.monotonic()
        deadline = started + 60
        while time.monotonic() < deadline:
            try:
                status, body = http_json(f"{self.stack.query_url}/api/v1/ready")
            except OSError:
                status, body = 0, {}
            if status == 200 and body.get("checks", {}).get("redis", {}).get("status") == "ok":
                break
            time.sleep(0.2)
        ready = time.monotonic()

        async def probe() -> None:
            clerk, reader = self._client("clerk"), self._client("clerk", "query")
            try:
                response = await clerk.call("POST", f"{ITEMS_PATH}/{self.items[0]}/adjust", {"quantity": 1})
                if response.status != 202:
                    raise api.ApiFailure(f"probe command: HTTP {response.status} {response.body[:200]!r}")
                command_id = command_id_of(response)
                self.accepted.add(command_id)
                await api.wait_applied(reader, [command_id], 60)
            finally:
                clerk.close()
                reader.close()

        run_async(probe())
        # The change of the probe is committed: it is announced once the outbox is empty again.
        while self.stack.listener_url and time.monotonic() < deadline:
            try:
                _, body = http_json(f"{self.stack.listener_url}/api/v1/ready")
            except OSError:
                body = {}
            if body.get("checks", {}).get("outbox", {}).get("backlog") == 0:
                break
            time.sleep(0.05)
        return {
            "redis_ready_seconds": round(ready - started, 2),
            "changes_flowing_seconds": round(time.monotonic() - started, 2),
        }

    # --- 5. SSE fan-out -----------------------------------------------------------------

    def fanout(self) -> Result:
        groups = []
        for count in self.size.fanout_subscribers:
            groups.append(self._fanout(count))
        return {"workload": "POST adjust +1 on one item at a time; every subscriber waits for its item event",
                "groups": groups}  # fmt: skip

    def _fanout(self, count: int) -> Result:
        per_process = self.size.subscribers_per_process
        processes = max(1, math.ceil(count / per_process))
        shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
        watch = random.Random(count).sample(self.items, min(self.size.fanout_commands, len(self.items)))
        versions = self._versions(watch)
        spacing = 0.2 + count / 2500
        group = SubscriberProcesses(
            [SubscriberLoad(self.stack.query_url, self.tokens["viewer"], share, watch) for share in shares]
        )
        try:
            connected = group.wait_ready(timeout=120 + count / 20)
            before = self._cpu()
            started = time.monotonic()
            targets = run_async(self._send_one_by_one(watch, versions, spacing))
            time.sleep(2.0 + spacing)
            wall = time.monotonic() - started
            others = self._others_percent(self._others, wall)
            usage = self._cpu_since(before, wall)
            reports = group.finish(targets)
        finally:
            group.close()
        latencies = [value for report in reports for value in report["latencies"]]
        result = {
            "subscribers": count,
            "processes": processes,
            "connected": connected,
            "connect_seconds": max(report["connect_seconds"] for report in reports),
            "connect_failures": [report["connect_failures"] for report in reports],
            "disconnected": sum(report["disconnected"] for report in reports),
            "commands": len(targets),
            "command_spacing_seconds": round(spacing, 3),
            "deliveries": len(latencies),
            "missing": sum(report["missing"] for report in reports),
            "latency": summarize(latencies),
            "generator": [report["generator"] for report in reports],
            "window": {
                "server_cpu": usage,
                "host_busy_percent": usage.pop(HOST)["cpu_percent"],
                "other_processes_percent": others,
            },
        }
        self._account(result, before, wall)
        log(
            f"  {count:>5} subscribers ({connected} connected): p50 {result['latency'].get('p50_ms')} ms, "
            f"p99 {result['latency'].get('p99_ms')} ms, missing {result['missing']}"
        )
        return result

    async def _send_one_by_one(
        self, items: list[str], versions: dict[str, int], spacing: float
    ) -> dict[str, tuple[int, float]]:
        client = self._client("clerk")
        targets: dict[str, tuple[int, float]] = {}
        try:
            for item in items:
                response = await client.call("POST", f"{ITEMS_PATH}/{item}/adjust", {"quantity": 1})
                answered = time.monotonic()
                if response.status != 202:
                    raise api.ApiFailure(f"adjust {item}: HTTP {response.status} {response.body[:200]!r}")
                self.accepted.add(command_id_of(response))
                targets[item] = (versions[item] + 1, answered)
                await asyncio.sleep(spacing)
        finally:
            client.close()
        return targets

    # --- 2. listener catch-up -----------------------------------------------------------

    def catch_up(self) -> Result:
        stack = self.stack
        if not stack.started or stack.data_dir is None:
            return {"skipped": "needs a stack the harness started (it stops and restarts the listener)"}
        data_dir = stack.data_dir
        self.drain()
        count = self.size.backlog_events
        messages, command_ids = backlog.backlog(self.items, count)
        stack.stop_listener()
        if stack.mode == "kafka":
            assert stack.kafka_bootstrap is not None
            event_log = backlog.kafka_log(stack.kafka_bootstrap, stack.topic_prefix)
        else:
            event_log = backlog.embedded_log(data_dir)
        produce_seconds = run_async(backlog.produce(event_log, messages))
        self.accepted.update(command_ids)
        baseline = checks.outcome_count(data_dir)
        target = baseline + count
        log(f"  {count} events produced in {produce_seconds:.1f} s; starting the listener")
        before = self._cpu()
        started = time.monotonic()
        stack.start_listener(wait=False)
        first_at: float | None = None
        first_count = baseline
        done_at: float | None = None
        deadline = started + self.size.drain_timeout
        last_count, last_progress = baseline, started
        while time.monotonic() < deadline:
            asked = time.monotonic()
            try:
                current = checks.outcome_count(data_dir)
            except sqlite3.OperationalError:
                current = last_count
            now = time.monotonic()
            # Counting rows is a scan: poll at most a fifth of the time, so the instrument does not
            # take the listener's CPU.
            pause = max(0.1, 5 * (now - asked))
            if first_at is None and current > baseline:
                first_at, first_count = now, current
            if current >= target:
                done_at = now
                break
            if current > last_count:
                last_count, last_progress = current, now
            elif now - last_progress > STALL_SECONDS:
                raise RuntimeError(
                    f"the listener stopped making progress at {current - baseline} of {count} events "
                    f"(see {stack.listener_log()})"
                )
            time.sleep(pause)
        wall = time.monotonic() - started
        stack.wait_listener()
        if done_at is None or first_at is None:
            raise TimeoutError(f"the listener did not apply {count} events within {self.size.drain_timeout:.0f} s")
        applying = max(done_at - first_at, 1e-9)
        result: Result = {
            "events": count,
            "mix": "adjust +1, reserve 1, release 1 in turn per item",
            "produce_seconds": round(produce_seconds, 2),
            "produced_per_s": round(count / produce_seconds, 1),
            "start_to_first_apply_seconds": round(first_at - started, 2),
            "apply_seconds": round(applying, 2),
            "events_per_s": round((target - first_count) / applying, 1),
            "events_per_s_including_start": round(count / (done_at - started), 1),
            "listener_process": "all (embedded)" if stack.mode == "embedded" else "listener",
        }
        self._account(result, before, wall)
        return result

    # --- 7. correctness -----------------------------------------------------------------

    def correctness(self) -> Result:
        stack = self.stack
        if stack.data_dir is None:
            return {"skipped": "needs the data directory (--data-dir) to read the inventory database"}
        drained = True
        try:
            drain_seconds = self.drain()
        except TimeoutError:
            drained, drain_seconds = False, self.size.drain_timeout
        report = checks.database_report(stack.data_dir, self.accepted)
        report["drained"] = drained
        report["drain_seconds"] = drain_seconds
        messages: int | None = None
        if stack.mode == "kafka" and stack.kafka_bootstrap:
            messages = checks.kafka_topic_messages(stack.kafka_bootstrap, stack.topic_prefix)
        elif stack.mode == "embedded" and (stack.data_dir / "eventlog.db").exists():
            messages = checks.embedded_topic_messages(stack.data_dir)
        report["command_topic_messages"] = messages
        report["unaccounted_messages"] = None if messages is None else messages - report["outcomes"]
        report["ok"] = (
            drained
            and report["oversold"] == 0
            and report["lost"] == 0
            and report["applied_twice"] == 0
            and report["unbalanced"] == 0
            and report["unaccounted_messages"] in (0, None)
        )
        if not report["ok"]:
            self.failed = True
        log(
            f"  oversold {report['oversold']}, lost {report['lost']}, applied twice {report['applied_twice']}, "
            f"unbalanced {report['unbalanced']}, "
            f"messages {messages} / outcomes {report['outcomes']}"
        )
        return report

    # --- 6. resources -------------------------------------------------------------------

    def resources(self) -> Result:
        self.stack.sample()
        processes = {
            process.name: {"pid": process.pid, "peak_rss_mib": round(process.peak_kib / 1024, 1),
                           "cpu_seconds": round(process.cpu(), 1)}
            for process in self.stack.watched
        }  # fmt: skip
        generators = [g for g in _generators(self.sections)]
        return {
            "processes": processes,
            "load_generator": {
                "peak_rss_mib": round(max((g.get("peak_rss_kib", 0) for g in generators), default=0) / 1024, 1),
                "cpu_seconds": round(sum(g.get("cpu_seconds", 0.0) for g in generators), 1),
                "max_cpu_percent": max((g.get("cpu_percent", 0.0) for g in generators), default=0.0),
            },
            "note": "peak RSS is VmHWM from /proc; CPU is user+system over the whole run",
        }


def _generators(value: Any) -> list[Result]:
    """Every load generator report anywhere in the results."""
    found: list[Result] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "generator":
                found += inner if isinstance(inner, list) else [inner]
            else:
                found += _generators(inner)
    elif isinstance(value, list):
        for inner in value:
            found += _generators(inner)
    return found


def size_description(size: Size) -> Result:
    return asdict(size)
