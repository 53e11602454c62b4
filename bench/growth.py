"""``python -m bench growth``: what it costs to be a chain rather than a shop.

One run starts a fresh embedded stack (``inventory serve --role all``) for a small chain and then
one for a large chain, loads the same demo catalogue into each (``app/ops/demo.py``: every item
is created at MAIN and delivered to about 97.5 % of the stores, so the levels are roughly items x
stores), and measures on each: the time to apply the demo, a store's list page, GET stock of one
location, reserves, the size of the ``item`` change record after one reserve, and the process's
memory and data directory. Then the ratios large/small against the targets.

HTTP throughput comes from a compiled load generator when one can be installed (``hey``, with
``go install`` into a cache directory outside the repository), else from the project's own
generator (``bench/loadgen.py``); the result says which one ran.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.domain.records import decode_change, encode_text, for_screens
from bench import api, checks
from bench.compiled import Generator, find_hey
from bench.harness import log
from bench.loadgen import ITEMS_PATH, run_async
from bench.procs import peak_rss_kib
from bench.stack import EmbeddedStack

Result = dict[str, Any]

RESERVE_BODY = b'{"quantity":1,"location":"S001"}'
# The reserve workload hits one item: enough stock at S001 that no reserve is rejected.
RESERVE_STOCK = 1_000_000
MIB = 1024 * 1024


@dataclass(frozen=True)
class GrowthSize:
    name: str
    items: int
    stores: tuple[int, int]  # small chain, large chain (stores besides MAIN)
    seconds: float  # per HTTP workload
    warmup: float  # unrecorded load before each workload (first requests, cold caches)
    list_clients: int
    stock_clients: int
    reserve_clients: int
    apply_timeout: float


GROWTH_SIZES = {
    "small": GrowthSize("small", items=50, stores=(2, 20), seconds=1.0, warmup=0.3, list_clients=16,
                        stock_clients=64, reserve_clients=16, apply_timeout=120.0),
    # 2,000 items x (4 | 500) stores: about 9,800 and 977,000 levels (the two chains).
    "full": GrowthSize("full", items=2_000, stores=(4, 500), seconds=10.0, warmup=2.0, list_clients=16,
                       stock_clients=64, reserve_clients=16, apply_timeout=1_800.0),
}  # fmt: skip

# The targets of the issue, large chain against small chain.
RATIO_LIMIT = 1.5
LIST_MIN_PER_S = 500.0
CHANGE_LIMIT_BYTES = 1024
APPLY_LIMIT_SECONDS = 120.0
RSS_LIMIT_MIB = 300.0


def chain(stores: int) -> tuple[str, ...]:
    return ("MAIN", *(f"S{n:03d}" for n in range(1, stores + 1)))


# --- one chain ---------------------------------------------------------------------------


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _current_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def _publish_demo(data_dir: Path, locations: tuple[str, ...], items: int) -> int:
    from app.eventlog.embedded import EmbeddedEventLog
    from app.ops.demo import load_demo

    event_log = EmbeddedEventLog(data_dir / "eventlog.db")
    await event_log.start()
    try:
        return len((await load_demo(event_log, locations, items=items)).events)
    finally:
        await event_log.stop()


def _wait_outcomes(data_dir: Path, target: int, timeout: float) -> tuple[float, float | None]:
    """Poll ``command_outcomes`` read-only until it has ``target`` rows: (done at, first apply at)."""
    deadline = time.monotonic() + timeout
    first: float | None = None
    while time.monotonic() < deadline:
        asked = time.monotonic()
        current = checks.outcome_count(data_dir)
        now = time.monotonic()
        if first is None and current > 0:
            first = now
        if current >= target:
            return now, first
        # Counting is a scan: poll at most a fifth of the time so as not to take the listener's CPU.
        time.sleep(max(0.1, 5 * (now - asked)))
    raise TimeoutError(f"{target} outcomes not reached within {timeout:.0f} s")


async def _one_command(url: str, token: str, path: str, body: Result, data_dir: Path) -> str:
    client = api.Client(url, token, connections=1)
    try:
        response = await client.call("POST", path, body)
    finally:
        client.close()
    if response.status != 202:
        raise RuntimeError(f"POST {path}: HTTP {response.status} {response.body[:200]!r}")
    return str(json.loads(response.body)["command_id"])


def _wait_command(data_dir: Path, command_id: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = checks.read_only(data_dir / "inventory.db")
        try:
            row = conn.execute("SELECT status FROM command_outcomes WHERE command_id = ?", (command_id,)).fetchone()
        finally:
            conn.close()
        if row:
            return str(row[0])
        time.sleep(0.05)
    raise TimeoutError(f"command {command_id} not applied within {timeout:.0f} s")


def measure_chain(work_dir: Path, stores: int, size: GrowthSize, generator: Generator) -> Result:
    locations = chain(stores)
    stack = EmbeddedStack(work_dir)
    stack.env["INVENTORY_LOCATIONS"] = ",".join(locations)
    assert stack.data_dir is not None
    data_dir = stack.data_dir
    result: Result = {"stores": stores, "items": size.items}
    try:
        stack.create_users()
        produce_started = time.monotonic()
        events = run_async(_publish_demo(data_dir, locations, size.items))
        result["demo_events"] = events
        result["produce_seconds"] = round(time.monotonic() - produce_started, 2)
        log(f"  {stores} stores: {events} demo events in the log; starting the process")
        started = time.monotonic()
        stack.start_listener(wait=False)
        done_at, first_at = _wait_outcomes(data_dir, events, size.apply_timeout)
        stack.wait_listener()
        # A small demo may be applied before the first poll sees any of it: then only the span from
        # the process's start is meaningful.
        applying = done_at - first_at if first_at is not None and done_at - first_at >= 1.0 else None
        conn = checks.read_only(data_dir / "inventory.db")
        try:
            levels = checks.scalar(conn, "SELECT COUNT(*) FROM stock_levels")
            rejected = checks.scalar(conn, "SELECT COUNT(*) FROM command_outcomes WHERE status != 'applied'")
            # Items stocked at S001: the list page and the reserves are at one store.
            (item_id,) = conn.execute(
                "SELECT item_id FROM stock_levels WHERE location = 'S001' AND quantity >= 6 ORDER BY item_id LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        result["apply"] = {
            "levels": levels,
            "rejected": rejected,
            "seconds_from_start": round(done_at - started, 2),
            "events_per_s": round(events / (done_at - started), 1),
            "seconds_from_first_apply": None if applying is None else round(applying, 2),
            "events_per_s_from_first_apply": None if applying is None else round(events / applying, 1),
        }
        log(f"  {levels} levels applied in {done_at - started:.1f} s")

        tokens = {role: run_async(api.login(stack.command_url, *stack.user(role))) for role in ("viewer", "clerk")}
        url = stack.command_url
        list_path = f"{ITEMS_PATH}?page=3&page_size=25&location=S001"
        stock_path = f"{ITEMS_PATH}/{item_id}/stock?location=S001"
        result["list_page"] = generator.measure(
            url, tokens["viewer"], list_path, size.list_clients, size.seconds, 200, warmup=size.warmup
        )
        result["stock"] = generator.measure(
            url, tokens["viewer"], stock_path, size.stock_clients, size.seconds, 200, warmup=size.warmup
        )

        # Stock enough for every reserve, then reserves on that one item at S001.
        stocked = run_async(_one_command(url, tokens["clerk"], f"{ITEMS_PATH}/{item_id}/adjust",
                                         {"quantity": RESERVE_STOCK, "location": "S001"}, data_dir))  # fmt: skip
        _wait_command(data_dir, stocked)
        before = checks.outcome_count(data_dir)
        reserve_path = f"{ITEMS_PATH}/{item_id}/reserve"
        result["reserve"] = generator.measure(
            url, tokens["clerk"], reserve_path, size.reserve_clients, size.seconds, 202, RESERVE_BODY, size.warmup
        )
        drain_started = time.monotonic()
        _wait_outcomes(
            data_dir, before + result["reserve"]["requests"] + result["reserve"]["warmup_requests"], size.apply_timeout
        )
        result["reserve"]["drain_seconds"] = round(time.monotonic() - drain_started, 2)

        # One more reserve on its own: its item change record is the newest one of the item.
        command_id = run_async(_one_command(url, tokens["clerk"], reserve_path, json.loads(RESERVE_BODY), data_dir))
        status = _wait_command(data_dir, command_id)
        conn = checks.read_only(data_dir / "inventory.db")
        try:
            (payload,) = conn.execute(
                "SELECT payload FROM changes WHERE kind = 'item' AND item_id = ? ORDER BY seq DESC LIMIT 1",
                (item_id,),
            ).fetchone()
        finally:
            conn.close()
        # What every screen gets (the stored record also carries rows for replicas: docs/scaling.md).
        screened = encode_text(for_screens(decode_change(payload.encode())))
        result["change_record"] = {
            "bytes": len(screened.encode()),
            "stored_bytes": len(payload.encode()),
            "reserve_status": status,
        }

        pid = stack.all.pid
        assert pid is not None
        result["process"] = {
            "rss_mib": round((_current_rss_kib(pid) or 0) / 1024, 1),
            "peak_rss_mib": round((peak_rss_kib(pid) or 0) / 1024, 1),
        }
        result["data_dir_mib"] = round(_dir_bytes(data_dir) / MIB, 1)
    finally:
        stack.stop()
    return result


# --- the whole run -----------------------------------------------------------------------


def _ratio(large: float | None, small: float | None) -> float | None:
    if not large or not small:
        return None
    return round(large / small, 2)


def compare(small: Result, large: Result) -> Result:
    """Ratios large/small and whether each target of the issue is met."""

    def p99(chain_result: Result, key: str) -> float | None:
        value = chain_result.get(key, {}).get("latency", {}).get("p99_ms")
        return float(value) if value is not None else None

    def per_s(chain_result: Result, key: str) -> float | None:
        value = chain_result.get(key, {}).get("per_s")
        return float(value) if value is not None else None

    ratios = {
        "list_per_s": _ratio(per_s(large, "list_page"), per_s(small, "list_page")),
        "list_p99": _ratio(p99(large, "list_page"), p99(small, "list_page")),
        "stock_per_s": _ratio(per_s(large, "stock"), per_s(small, "stock")),
        "stock_p99": _ratio(p99(large, "stock"), p99(small, "stock")),
        "reserve_per_s": _ratio(per_s(large, "reserve"), per_s(small, "reserve")),
        "reserve_p99": _ratio(p99(large, "reserve"), p99(small, "reserve")),
        "change_record_bytes": _ratio(large["change_record"]["bytes"], small["change_record"]["bytes"]),
        "rss": _ratio(large["process"]["rss_mib"], small["process"]["rss_mib"]),
        "data_dir": _ratio(large["data_dir_mib"], small["data_dir_mib"]),
        "apply_seconds": _ratio(large["apply"]["seconds_from_start"], small["apply"]["seconds_from_start"]),
    }

    def within(ratio: float | None) -> bool | None:
        return None if ratio is None else ratio <= RATIO_LIMIT

    list_rate = per_s(large, "list_page")
    list_p99 = within(ratios["list_p99"])
    targets = {
        "list_page": None if list_rate is None or list_p99 is None else list_rate >= LIST_MIN_PER_S and list_p99,
        "reserve_p99": within(ratios["reserve_p99"]),
        "stock_p99": within(ratios["stock_p99"]),
        "change_record_under_1kb": large["change_record"]["bytes"] < CHANGE_LIMIT_BYTES
        and small["change_record"]["bytes"] < CHANGE_LIMIT_BYTES,
        "apply_under_120s": large["apply"]["seconds_from_start"] < APPLY_LIMIT_SECONDS,
        "rss_under_300mib": max(large["process"]["rss_mib"], large["process"]["peak_rss_mib"]) < RSS_LIMIT_MIB,
    }
    return {"ratios": ratios, "targets": targets}


def run_growth(size: GrowthSize, work_dir: Path, keep: bool, install: bool) -> Result:
    hey, how = find_hey(install)
    generator = Generator(hey, how)
    log(f"load generator: {generator.name} ({how})")
    chains: dict[str, Result] = {}
    for label, stores in zip(("small", "large"), size.stores, strict=True):
        log(f"growth: {label} chain, MAIN + {stores} stores x {size.items} items")
        chain_dir = work_dir / f"chain-{stores}"
        chain_dir.mkdir(parents=True, exist_ok=True)
        chains[label] = measure_chain(chain_dir, stores, size, generator)
        if not keep:
            shutil.rmtree(chain_dir, ignore_errors=True)
    return {
        "load_generator": {"name": generator.name, "how": how},
        "sizes": asdict(size),
        "chains": chains,
        **compare(chains["small"], chains["large"]),
        "limits": {
            "ratio": RATIO_LIMIT,
            "list_min_per_s": LIST_MIN_PER_S,
            "change_bytes": CHANGE_LIMIT_BYTES,
            "apply_seconds": APPLY_LIMIT_SECONDS,
            "rss_mib": RSS_LIMIT_MIB,
        },
    }


def render(growth: Result) -> str:
    from bench.report import table

    small, large = growth["chains"]["small"], growth["chains"]["large"]

    def row(label: str, get: Any, ratio_key: str | None) -> list[Any]:
        ratio = growth["ratios"].get(ratio_key) if ratio_key else None
        return [label, get(small), get(large), ratio if ratio is not None else "-"]

    def lat(key: str) -> Any:
        return lambda c: (
            f"{c[key]['per_s']:,.0f}/s, {c[key]['latency'].get('p50_ms')} / {c[key]['latency'].get('p99_ms')}"
        )

    rows = [
        row("levels", lambda c: f"{c['apply']['levels']:,}", None),
        row("apply demo: s from start (events/s)",
            lambda c: f"{c['apply']['seconds_from_start']} ({c['apply']['events_per_s']:,.0f})", "apply_seconds"),
        row("list page at S001: req/s, p50 / p99 ms", lat("list_page"), "list_p99"),
        row("GET stock ?location=S001: req/s, p50 / p99 ms", lat("stock"), "stock_p99"),
        row("reserve 202: req/s, p50 / p99 ms", lat("reserve"), "reserve_p99"),
        row("item change record after a reserve (bytes)", lambda c: c["change_record"]["bytes"], "change_record_bytes"),
        row("RSS now / peak (MiB)", lambda c: f"{c['process']['rss_mib']} / {c['process']['peak_rss_mib']}", "rss"),
        row("data directory (MiB)", lambda c: c["data_dir_mib"], "data_dir"),
    ]  # fmt: skip
    header = [
        "",
        f"MAIN + {small['stores']} stores",
        f"MAIN + {large['stores']} stores",
        "large / small",
    ]
    targets = [[name, {True: "met", False: "NOT met", None: "-"}[ok]] for name, ok in growth["targets"].items()]
    return "\n\n".join(
        [
            table(f"Growth (load generator: {growth['load_generator']['name']})", header, rows),
            table("Targets (large chain)", ["target", ""], targets),
        ]
    )
