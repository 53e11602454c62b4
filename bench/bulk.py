"""``python -m bench bulk``: CSV in and out, and webhooks, on a stack of its own.

Three parts, each reported on its own (one failing does not stop the others):

* ``import``   - a counts file (every bench item at every location) uploaded through
  ``POST /api/v1/imports``, previewed, confirmed and followed until done: rows/s from the
  confirmation to the last row settled, and the dashboard's GET p99 meanwhile against an idle run
  of the same probe (the issue's target: within 2x);
* ``webhooks`` - one endpoint to a receiver in this process that records each delivery's arrival
  and checks its signature; stock commands on distinct items: deliveries/s and commit-to-delivery
  latency (the body's ``created_at`` is the change's commit time);
* ``export``   - a query process of its own over a database of ``export_levels`` levels written
  directly (as the listener's schema has them): ``GET /api/v1/inventory/items.csv`` read to the
  end, rows/s, the process's resident memory before and at its peak, and GET /api/v1/health
  latency while the export streams.

The dashboard and health probes are one closed-loop client each (plain keep-alive HTTP from a
thread): they measure what a person waits while the bulk work runs, they are not load.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import random
import secrets
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import api
from bench.loadgen import ITEMS_PATH, command_id_of, gather_limited, run_async
from bench.procs import peak_rss_kib
from bench.report import table
from bench.stack import REPO, EmbeddedStack, KafkaStack, Service, StartedStack, free_port
from bench.stats import rate, summarize

Result = dict[str, Any]
ADMIN = "bench-admin"
LOCATIONS = ["MAIN", *(f"S{n:03d}" for n in range(1, 10))]  # 10: a counts file is items x 10 rows
IMPORTS_PATH = "/api/v1/imports"
WEBHOOKS_PATH = "/api/v1/webhooks"
EXPORT_PATH = f"{ITEMS_PATH}.csv"


@dataclass(frozen=True)
class BulkSize:
    name: str
    items: int  # the import's file has items x len(LOCATIONS) count rows
    webhook_commands: int
    export_levels: int  # rows of the export (items x len(LOCATIONS))
    idle_seconds: float  # the dashboard probe with nothing else running
    timeout: float  # for an import to finish
    # The deliveries are waited for this long at most (what arrived by then is reported).
    webhook_wait: float


BULK_SIZES = {
    "small": BulkSize(
        "small", items=20, webhook_commands=20, export_levels=2_000, idle_seconds=1.0, timeout=120, webhook_wait=120
    ),
    "full": BulkSize(
        "full",
        items=10_000,
        webhook_commands=2_000,
        export_levels=1_000_000,
        idle_seconds=10.0,
        timeout=1800,
        webhook_wait=300,
    ),
}


def log(message: str) -> None:
    print(f"[bench bulk {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- plain HTTP for the harness's own calls ---------------------------------------------------


class Http:
    """One keep-alive connection to a service (http.client): the harness's own calls and probes."""

    def __init__(self, url: str, token: str | None = None) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        sent = {**({"Authorization": f"Bearer {self.token}"} if self.token else {}), **(headers or {})}
        for attempt in range(2):  # a keep-alive connection the server closed: once more on a new one
            try:
                self._conn.request(method, path, body=body, headers=sent)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self._conn.close()
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else None
        return self.send(method, path, raw, "application/json" if raw else None)

    def send(self, method: str, path: str, body: bytes | None, content_type: str | None) -> tuple[int, Any]:
        """A request with this body; the answer's JSON (its text when it is not JSON)."""
        status, answer = self.request(method, path, body, {"Content-Type": content_type} if content_type else None)
        try:
            return status, json.loads(answer or b"null")
        except ValueError:
            return status, answer.decode(errors="replace")

    def close(self) -> None:
        self._conn.close()


class Probe:
    """GET one path again and again from a thread (one request at a time) until stopped."""

    def __init__(self, url: str, token: str, path: str) -> None:
        self.http = Http(url, token)
        self.path = path
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, _ = self.http.request("GET", self.path)
            except (OSError, http.client.HTTPException):
                status = -1
            if status == 200:
                self.latencies.append(time.monotonic() - started)
            else:
                self.failures += 1
                time.sleep(0.05)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.http.close()

    def report(self) -> Result:
        return {"path": self.path, "latency": summarize(self.latencies), "failures": self.failures}


def multipart(fields: dict[str, str], file_field: str, file_name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "bench" + secrets.token_hex(12)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{file_name}"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- the run ----------------------------------------------------------------------------------


class Bulk:
    def __init__(self, stack: StartedStack, size: BulkSize, sections: dict[str, Result]) -> None:
        self.stack = stack
        self.size = size
        self.tokens: dict[str, str] = {}
        self.skus: list[str] = []
        self.item_ids: list[str] = []
        # Filled as each part ends, so an interrupted run still reports what it measured.
        self.sections = sections

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

    def run(self) -> dict[str, Result]:
        self.section("setup", self.setup)
        for name in ("import", "webhooks", "export"):
            if "error" in self.sections["setup"] and name != "export":
                self.sections[name] = {"skipped": "set-up failed"}
            else:
                self.section(name, getattr(self, f"measure_{name}"))
        return self.sections

    def setup(self) -> Result:
        add_user(self.stack.env, ADMIN, "admin", self.stack.passwords.setdefault(ADMIN, secrets.token_urlsafe(16)))
        for role in ("manager", "viewer"):
            name, password = self.stack.user(role)
            self.tokens[role] = run_async(api.login(self.stack.command_url, name, password))
        self.tokens["admin"] = run_async(api.login(self.stack.command_url, ADMIN, self.stack.passwords[ADMIN]))
        prefix = f"BULK{uuid.uuid4().hex[:4].upper()}"
        started = time.monotonic()
        created = run_async(self._create(prefix))
        self.skus = [f"{prefix}-{n:06d}" for n in range(self.size.items)]
        self.item_ids = [item.item_id for item in created]
        return {"items": len(created), "create_seconds": round(time.monotonic() - started, 2)}

    async def _create(self, prefix: str) -> list[api.CreatedItem]:
        command = api.Client(self.stack.command_url, self.tokens["manager"])
        try:
            created = await api.create_items(command, self.size.items, prefix, 5)
            statuses = await api.wait_applied(command, [c.command_id for c in created], self.size.timeout)
        finally:
            command.close()
        refused = [s for s in statuses.values() if s != "applied"]
        if refused:
            raise RuntimeError(f"{len(refused)} item creates were not applied")
        return created

    # --- import -------------------------------------------------------------------------------

    def measure_import(self) -> Result:
        rng = random.Random(14)
        lines = ["sku,location,counted"] + [
            f"{sku},{location},{rng.randrange(0, 60)}" for sku in self.skus for location in LOCATIONS
        ]
        content = ("\r\n".join(lines) + "\r\n").encode()
        rows = len(lines) - 1
        with Probe(self.stack.query_url, self.tokens["viewer"], "/") as idle:
            time.sleep(self.size.idle_seconds)
        manager = Http(self.stack.command_url, self.tokens["manager"])
        try:
            body, content_type = multipart({"kind": "counts"}, "file", "counts.csv", content)
            started = time.monotonic()
            status, preview = manager.send("POST", IMPORTS_PATH, body, content_type)
            preview_seconds = time.monotonic() - started
            if status != 201:
                raise RuntimeError(f"upload: HTTP {status} {str(preview)[:300]}")
            if preview.get("error_rows"):
                raise RuntimeError(f"the preview found errors: {preview.get('errors', [])[:3]}")
            import_id = preview["id"]
            with Probe(self.stack.query_url, self.tokens["viewer"], "/") as busy:
                confirmed_at = time.monotonic()
                status, answer = manager.json("POST", f"{IMPORTS_PATH}/{import_id}/confirm")
                if status != 202:
                    raise RuntimeError(f"confirm: HTTP {status} {str(answer)[:300]}")
                final = self._wait_import(manager, import_id)
                done_at = time.monotonic()
        finally:
            manager.close()
        idle_p99 = idle.report()["latency"].get("p99_ms")
        busy_p99 = busy.report()["latency"].get("p99_ms")
        return {
            "rows": rows,
            "file_bytes": len(content),
            "preview_seconds": round(preview_seconds, 2),
            "preview_rows_per_s": rate(rows, preview_seconds),
            "apply_seconds": round(done_at - confirmed_at, 2),
            "rows_per_s": rate(rows, done_at - confirmed_at),
            "state": final.get("state"),
            "applied": final.get("applied"),
            "rejected": final.get("rejected"),
            "dashboard_idle": idle.report(),
            "dashboard_during_import": busy.report(),
            "dashboard_p99_ratio": round(busy_p99 / idle_p99, 2) if idle_p99 and busy_p99 else None,
        }

    def _wait_import(self, manager: Http, import_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.size.timeout
        while time.monotonic() < deadline:
            status, found = manager.json("GET", f"{IMPORTS_PATH}/{import_id}")
            if status != 200:
                raise RuntimeError(f"import status: HTTP {status} {str(found)[:300]}")
            if found.get("state") in ("done", "failed"):
                return dict(found)
            time.sleep(0.2)
        raise TimeoutError(f"the import was not done after {self.size.timeout:.0f} s")

    # --- webhooks -----------------------------------------------------------------------------

    def measure_webhooks(self) -> Result:
        with Receiver() as receiver:
            admin = Http(self.stack.command_url, self.tokens["admin"])
            try:
                status, endpoint = admin.json("POST", WEBHOOKS_PATH, {"url": receiver.url, "events": ["stock.changed"]})
                if status != 201:
                    raise RuntimeError(f"register: HTTP {status} {str(endpoint)[:300]}")
                receiver.secret = endpoint["secret"]
                # Changes committed before the endpoint existed may still be fanned out to it (the
                # fan-out follows the change feed): only the bench's own commands are measured.
                receiver.since = time.time()
                sent_at = time.monotonic()
                touched = run_async(self._adjust(self.size.webhook_commands))
                accepted_seconds = time.monotonic() - sent_at
                # One stock.changed per committed change, and the listener may apply several
                # commands of an item as one change: wait for what will really arrive, each
                # item's version after the last command (its body carries it), then for the
                # endpoint to have nothing pending.
                final = run_async(self._final_versions(touched))
                deadline = time.monotonic() + self.size.webhook_wait
                arrived = receiver.wait_versions(final, deadline) and self._drained(admin, endpoint["id"], deadline)
                admin.request("DELETE", f"{WEBHOOKS_PATH}/{endpoint['id']}")
            finally:
                admin.close()
        deliveries = receiver.unique()
        delays = [d["arrived_wall"] - d["committed"] for d in deliveries if d["committed"] is not None]
        first = min((d["arrived"] for d in deliveries), default=sent_at)
        last = max((d["arrived"] for d in deliveries), default=sent_at)
        return {
            "commands": self.size.webhook_commands,
            "items": len(final),
            "commands_accept_seconds": round(accepted_seconds, 2),
            "deliveries": len(deliveries),
            "all_arrived": arrived,
            "duplicates": receiver.received - len({d["id"] for d in receiver.deliveries}),
            "earlier_changes_delivered": len({d["id"] for d in receiver.deliveries}) - len(deliveries),
            "bad_signatures": receiver.bad_signatures,
            "deliveries_per_s": rate(len(deliveries), last - first),
            "send_to_last_delivery_seconds": round(last - sent_at, 2),
            "commit_to_delivery": summarize(delays),
        }

    async def _adjust(self, count: int) -> list[tuple[str, str]]:
        """The adjusts, 16 at a time: (item id, command id) of each."""
        client = api.Client(self.stack.command_url, self.tokens["manager"])
        rng = random.Random(41)

        async def one(n: int) -> tuple[str, str]:
            item_id = self.item_ids[n % len(self.item_ids)]
            body = {"quantity": 1, "location": rng.choice(LOCATIONS), "reason": "received"}
            for _ in range(50):
                response = await client.call("POST", f"{ITEMS_PATH}/{item_id}/adjust", body)
                if response.status == 202:
                    return item_id, command_id_of(response)
                if response.status not in (409, 503):
                    break
                await asyncio.sleep(0.1)
            raise RuntimeError(f"adjust {item_id}: HTTP {response.status} {response.body[:200]!r}")

        try:
            sent = await gather_limited([one(n) for n in range(count)], 16)
        finally:
            client.close()
        return list(sent)

    async def _final_versions(self, touched: list[tuple[str, str]]) -> dict[str, int]:
        """Each adjusted item's version once every adjust is applied: its last stock.changed
        carries that version."""
        command = api.Client(self.stack.command_url, self.tokens["manager"])
        query = api.Client(self.stack.query_url, self.tokens["viewer"])
        try:
            await api.wait_applied(command, [command_id for _, command_id in touched], self.size.timeout)
            return await api.item_versions(query, list(dict.fromkeys(item_id for item_id, _ in touched)))
        finally:
            command.close()
            query.close()

    def _drained(self, admin: Http, endpoint_id: str, deadline: float) -> bool:
        """True once the endpoint has no pending delivery (False at the deadline)."""
        while time.monotonic() < deadline:
            status, found = admin.json("GET", f"{WEBHOOKS_PATH}/{endpoint_id}")
            if status == 200 and found.get("deliveries", {}).get("pending") == 0:
                return True
            time.sleep(0.1)
        return False

    # --- export -------------------------------------------------------------------------------

    def measure_export(self) -> Result:
        root = self.stack.work_dir / "export"
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        items = max(1, self.size.export_levels // len(LOCATIONS))
        started = time.monotonic()
        asyncio.run(fill_levels(data / "inventory.db", items, LOCATIONS))
        fill_seconds = time.monotonic() - started
        env = {**self.stack.env, "INVENTORY_DATA_DIR": str(data)}
        password = secrets.token_urlsafe(16)
        add_user(env, "bench-viewer", "viewer", password)
        # The query role reads the file only; embedded mode has no query role of its own.
        service = Service("query" if self.stack.mode == "kafka" else "all", free_port(), env, root)
        service.start()
        try:
            service.wait_healthy()
            token = run_async(api.login(service.url, "bench-viewer", password))
            assert service.pid is not None
            return {"levels": items * len(LOCATIONS), "fill_seconds": round(fill_seconds, 1)} | export_once(
                service.url, service.pid, token
            )
        finally:
            service.stop()


def export_once(url: str, pid: int, token: str) -> Result:
    """Read the whole item export; sample the serving process's memory while it streams."""
    rss_before = rss_kib(pid) or 0
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_kib(pid) or 0)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=300)
    rows = size = 0
    try:
        with Probe(url, token, "/api/v1/health") as health:
            started = time.monotonic()
            conn.request("GET", EXPORT_PATH, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"export: HTTP {response.status} {response.read()[:300]!r}")
            chunked = response.getheader("Transfer-Encoding") == "chunked"
            first_byte = time.monotonic() - started
            while chunk := response.read(1 << 16):
                size += len(chunk)
                rows += chunk.count(b"\n")
            seconds = time.monotonic() - started
    finally:
        conn.close()
        stop.set()
        sampler.join(timeout=5)
    rows -= 1  # the header
    return {
        "rows": rows,
        "bytes": size,
        "chunked": chunked,
        "first_byte_ms": round(first_byte * 1000, 1),
        "seconds": round(seconds, 2),
        "rows_per_s": rate(rows, seconds),
        "mib_per_s": round(size / seconds / 2**20, 1) if seconds else None,
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_peak_during_mib": round(max(samples, default=0) / 1024, 1),
        "rss_peak_since_start_mib": round((peak_rss_kib(pid) or 0) / 1024, 1),
        "health_during_export": health.report(),
    }


def rss_kib(pid: int) -> int | None:
    """The process's resident set size now (VmRSS) in KiB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


async def fill_levels(path: Path, items: int, locations: list[str]) -> None:
    """A database as the listener leaves it (its own schema), ``items`` items stocked at every
    location, written directly: a million levels through the API would take an hour."""
    from app.listener.schema import open_writer  # the project's schema, as the listener creates it

    conn = await open_writer(str(path))
    stamp = "2026-12-01T00:00:00.000Z"
    try:
        for start in range(0, items, 10_000):
            batch = [
                (str(uuid.UUID(int=n + 1)), f"EXP-{n:07d}", f"Export item {n}")
                for n in range(start, min(items, start + 10_000))
            ]
            await conn.execute("BEGIN")
            await conn.executemany(
                "INSERT INTO items (id, sku, name, version, created_at, updated_at, quantity, reserved) "
                f"VALUES (?, ?, ?, 1, '{stamp}', '{stamp}', {10 * len(locations)}, 0)",
                batch,
            )
            await conn.executemany(
                "INSERT INTO stock_levels (item_id, location, quantity, reserved, version, updated_at) "
                f"VALUES (?, ?, 10, 0, 1, '{stamp}')",
                [(item_id, location) for item_id, _, _ in batch for location in locations],
            )
            await conn.execute("COMMIT")
    finally:
        await conn.close()


def add_user(env: dict[str, str], name: str, role: str, password: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "users", "add", name, "--role", role, f"--password={password}"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"inventory users add {name} failed:\n{result.stdout}\n{result.stderr}")


# --- the webhook receiver ----------------------------------------------------------------------


class ReceiverServer(ThreadingHTTPServer):
    # The dispatcher opens many connections at once: the default backlog of 5 would refuse some
    # (and count as the receiver's failures, retried: duplicates and delays that are ours).
    request_queue_size = 1024
    daemon_threads = True


class Receiver:
    """A local HTTP receiver: records each delivery's arrival and checks its signature."""

    def __init__(self) -> None:
        self.secret = ""
        self.since = 0.0
        self.deliveries: list[dict[str, Any]] = []
        self.received = 0
        self.bad_signatures = 0
        # The highest item version seen in a stock.changed body, by item.
        self.versions: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.record(dict(self.headers.items()), body)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ReceiverServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self, headers: dict[str, str], body: bytes) -> None:
        """Note the arrival (all of them, repeats too) and the item version its body carries."""
        arrived, arrived_wall = time.monotonic(), time.time()
        lowered = {key.lower(): value for key, value in headers.items()}
        fields = dict(
            part.split("=", 1) for part in lowered.get("inventory-webhook-signature", "").split(",") if "=" in part
        )
        expected = hmac.new(
            self.secret.encode(), fields.get("t", "").encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        try:
            payload = json.loads(body)
            committed = datetime.fromisoformat(payload["created_at"]).timestamp()
        except (ValueError, KeyError, TypeError):
            payload, committed = {}, None
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        with self._lock:
            if isinstance(data.get("item_id"), str) and isinstance(data.get("version"), int):
                item_id = data["item_id"]
                self.versions[item_id] = max(self.versions.get(item_id, 0), data["version"])
            self.received += 1
            if not hmac.compare_digest(expected, fields.get("v1", "")):
                self.bad_signatures += 1
            self.deliveries.append(
                {"id": lowered.get("inventory-webhook-id"), "type": payload.get("type"), "arrived": arrived,
                 "arrived_wall": arrived_wall, "committed": committed}
            )  # fmt: skip

    def unique(self) -> list[dict[str, Any]]:
        """Each delivery once (its first arrival), of the changes committed since ``since``."""
        with self._lock:
            first = {d["id"]: d for d in reversed(self.deliveries)}
        return [d for d in first.values() if d["committed"] is not None and d["committed"] >= self.since]

    def wait_versions(self, final: dict[str, int], deadline: float) -> bool:
        """True once each item's ``final`` version arrived (False at the deadline)."""
        while time.monotonic() < deadline:
            with self._lock:
                if all(self.versions.get(item_id, 0) >= version for item_id, version in final.items()):
                    return True
            time.sleep(0.05)
        return False

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- entry point and report --------------------------------------------------------------------


def run_bulk(mode: str, size: BulkSize, work_dir: Path, sections: dict[str, Result]) -> dict[str, Result]:
    stack: StartedStack = EmbeddedStack(work_dir) if mode == "embedded" else KafkaStack(work_dir)
    stack.env.update(
        {
            "INVENTORY_LOCATIONS": ",".join(LOCATIONS),
            "INVENTORY_IMPORT_MAX_ROWS": str(max(100_000, size.items * len(LOCATIONS))),
            # The receiver listens on loopback, which endpoints may not name unless allowed.
            "INVENTORY_WEBHOOKS_ALLOW_PRIVATE": "1",
        }
    )
    bulk = Bulk(stack, size, sections)
    try:
        log(f"starting the {mode} stack in {work_dir}")
        stack.start()
        return bulk.run()
    finally:
        log("stopping the stack")
        stack.stop()
        if not bulk.sections:
            bulk.sections["setup"] = {"error": "the stack did not start"}


IMPORT_HEADERS = ("rows", "preview s", "apply s", "rows/s", "applied", "rejected", "GET / p99 idle", "during", "ratio")
WEBHOOK_HEADERS = ("commands", "deliveries", "per s", "commit>delivery p50", "p99", "max", "duplicates", "bad sig")
EXPORT_HEADERS = ("rows", "MiB", "s", "rows/s", "first byte ms", "RSS before MiB", "RSS peak MiB", "health p99 ms")


def render(sections: dict[str, Result]) -> str:
    out = [
        f"{name}: {section.get('error') or section.get('skipped')}"
        for name, section in sections.items()
        if "error" in section or "skipped" in section
    ]
    imported = sections.get("import", {})
    if "rows" in imported:
        idle = imported["dashboard_idle"]["latency"].get("p99_ms")
        busy = imported["dashboard_during_import"]["latency"].get("p99_ms")
        keys = ("rows", "preview_seconds", "apply_seconds", "rows_per_s", "applied", "rejected")
        row = [imported[key] for key in keys] + [idle, busy, imported["dashboard_p99_ratio"]]
        out.append(table("CSV import (counts)", IMPORT_HEADERS, [row]))
    hooks = sections.get("webhooks", {})
    if "deliveries" in hooks:
        delay = hooks["commit_to_delivery"]
        row = [hooks["commands"], hooks["deliveries"], hooks["deliveries_per_s"]]
        row += [delay.get("p50_ms"), delay.get("p99_ms"), delay.get("max_ms"), hooks["duplicates"]]
        out.append(table("Webhooks (one endpoint, stock.changed)", WEBHOOK_HEADERS, [[*row, hooks["bad_signatures"]]]))
    exported = sections.get("export", {})
    if "rows" in exported:
        row = [exported["rows"], round(exported["bytes"] / 2**20, 1), exported["seconds"], exported["rows_per_s"]]
        row += [exported["first_byte_ms"], exported["rss_before_mib"], exported["rss_peak_during_mib"]]
        row.append(exported["health_during_export"]["latency"].get("p99_ms"))
        out.append(table("CSV export (items, long layout)", EXPORT_HEADERS, [row]))
    return "\n\n".join(out)


def size_description(size: BulkSize) -> Result:
    return asdict(size) | {"locations": len(LOCATIONS), "import_rows": size.items * len(LOCATIONS)}
