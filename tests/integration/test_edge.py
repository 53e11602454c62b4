"""What a client without an account can do to a running server: every request is bounded while it
is read (size and time), bad JSON is a 400, answers carry security headers, data files are
private and /metrics can be closed. One real ``inventory serve --role all`` process, spoken to
over raw sockets where a client would misbehave."""

from __future__ import annotations

import re
import select
import socket
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.application import create_app
from app.bootstrap import ROLES, build_container
from tests.support.app import PASSWORD, base_env, settings_for
from tests.support.processes import ServiceProcess

TIMEOUT = 2  # INVENTORY_HEADER_TIMEOUT and INVENTORY_BODY_TIMEOUT for this server, seconds
DEADLINE = 15  # how long a test waits for the server to act on those 2 s (generous: shared CI)
METRICS_TOKEN = "metrics-" + "m" * 32


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("edge")
    env = base_env(
        root / "data",  # created by the server itself: its first start makes the files
        INVENTORY_ADMIN_PASSWORD=PASSWORD,
        INVENTORY_HEADER_TIMEOUT=str(TIMEOUT),
        INVENTORY_BODY_TIMEOUT=str(TIMEOUT),
        INVENTORY_METRICS_TOKEN=METRICS_TOKEN,
    )
    service = ServiceProcess("all", env, root / "all.log").start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def admin(server: ServiceProcess) -> dict[str, str]:
    response = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _connect(server: ServiceProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, deadline: float = DEADLINE) -> tuple[bytes, bool]:
    """What the server sent, and whether it closed the connection within the deadline."""
    received = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def _status(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match, answer[:200]
    return int(match.group(1))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _pid(server: ServiceProcess) -> int:
    assert server.process is not None
    return server.process.pid


# --- sizes, refused while they are read ---------------------------------------------------------


def test_a_header_flood_is_refused_while_it_is_read_and_memory_stays_bounded(server: ServiceProcess) -> None:
    """The probe: 15,400 headers of 65,000 bytes (1 GB) on one connection to /api/v1/health."""
    before = _rss_kib(_pid(server))
    sock = _connect(server)
    header = b"X-Filler-%d: " + b"y" * 65_000 + b"\r\n"
    sent = 0
    answer = b""
    try:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: probe\r\n")
        for n in range(15_400):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server answered (or closed) while we were still sending
            sock.sendall(header % n)
            sent += len(header)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer, _ = _read_until_closed(sock)
    sock.close()
    after = _rss_kib(_pid(server))
    assert _status(answer) == 431 and b'"HeadersTooLarge"' in answer
    assert sent < 64 * 1024 * 1024, f"the server read {sent} bytes of headers before refusing"
    assert after - before < 100 * 1024, f"RSS grew from {before} KiB to {after} KiB"
    assert httpx.get(f"{server.url}/api/v1/health").status_code == 200


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(150)), 431),
        (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"z" * 20_000 + b"\r\n", 431),
        (b"GET /api/v1/health?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n", 414),
    ],
    ids=["too-many-headers", "one-header-too-large", "request-line-too-long"],
)
def test_oversized_heads_get_their_status_and_the_one_error_shape(
    server: ServiceProcess, head: bytes, status: int
) -> None:
    sock = _connect(server)
    sock.sendall(head + b"\r\n")
    answer, closed = _read_until_closed(sock)
    sock.close()
    assert _status(answer) == status and closed
    assert re.search(rb'\{"error":"\w+","message":"[^"]+","details":null\}$', answer), answer
    assert re.search(rb"\r\nx-request-id: \w+\r\n", answer)


def test_an_endless_chunked_body_is_cut_at_the_limit(server: ServiceProcess, admin: dict[str, str]) -> None:
    before = _rss_kib(_pid(server))
    sock = _connect(server)
    sock.sendall(
        b"POST /api/v1/inventory/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: " + admin["Authorization"].encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (60_000, b" " * 60_000)
    sent = 0
    try:
        for _ in range(20_000):  # 1.2 GB if nobody stops it
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer, _ = _read_until_closed(sock)
    sock.close()
    assert _status(answer) == 413
    assert sent < 64 * 1024 * 1024
    assert _rss_kib(_pid(server)) - before < 100 * 1024


# --- slow clients ---------------------------------------------------------------------------------


def test_a_silent_connection_is_closed(server: ServiceProcess) -> None:
    sock = _connect(server)
    answer, closed = _read_until_closed(sock)
    sock.close()
    assert closed and answer == b""


def test_partial_headers_get_408_and_are_closed(server: ServiceProcess) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
    answer, closed = _read_until_closed(sock)
    sock.close()
    assert closed and _status(answer) == 408 and b'"RequestTimeout"' in answer


def test_trickled_headers_are_closed_however_slowly_they_come(server: ServiceProcess) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /api/v1/health HTTP/1.1\r\n")
    end = time.monotonic() + DEADLINE
    closed = False
    answer = b""
    n = 0
    while time.monotonic() < end and not closed:
        try:
            sock.sendall(b"X-T%d: 1\r\n" % n)  # one header every 200 ms: never idle, never done
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        n += 1
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            received, closed = _read_until_closed(sock, 1)
            answer += received
    sock.close()
    assert closed and (answer == b"" or _status(answer) == 408)


def test_an_unfinished_body_gets_408_and_is_closed(server: ServiceProcess) -> None:
    sock = _connect(server)
    sock.sendall(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"username": "admin"'
    )
    answer, closed = _read_until_closed(sock)
    sock.close()
    assert closed and _status(answer) == 408


def test_a_live_stream_is_not_cut_by_the_request_timeouts(server: ServiceProcess, admin: dict[str, str]) -> None:
    sock = _connect(server)
    sock.sendall(
        b"GET /api/v1/inventory/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
        b"Authorization: " + admin["Authorization"].encode() + b"\r\n\r\n"
    )
    answer, closed = _read_until_closed(sock, 3 * TIMEOUT + 1)
    assert not closed and _status(answer) == 200
    # And it still delivers: a change made now arrives on the open stream.
    created = httpx.post(
        f"{server.url}/api/v1/inventory/items",
        json={"sku": f"SSE-{uuid.uuid4().hex[:8]}", "name": "Streamed"},
        headers={**admin, "Prefer": "wait=10"},
        timeout=20,
    )
    assert created.status_code == 201, created.text
    more, _ = _read_until_closed(sock, 5)
    sock.close()
    assert created.json()["id"].encode() in more


# --- JSON nesting ---------------------------------------------------------------------------------


def _json_operations(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every operation that takes a JSON body, in the OpenAPI of every role."""
    operations = set()
    for role in ROLES:
        settings = settings_for(base_env(tmp_path / role))
        schema = create_app(build_container(settings, role)).openapi_schema.to_schema()
        for path, item in schema["paths"].items():
            for method, operation in item.items():
                body = operation.get("requestBody", {}) if isinstance(operation, dict) else {}
                if any("json" in media for media in body.get("content", {})):
                    operations.add((method.upper(), path))
    return operations


def test_deep_json_is_a_400_on_every_json_route(server: ServiceProcess, admin: dict[str, str], tmp_path: Path) -> None:
    operations = _json_operations(tmp_path)
    assert ("POST", "/api/v1/auth/login") in operations and ("POST", "/api/v1/inventory/items") in operations
    deep = b"[" * 5000 + b"]" * 5000
    deep_object = b'{"a":' * 1000 + b"1" + b"}" * 1000
    just_allowed = b"[" * 32 + b"]" * 32
    for method, template in sorted(operations):
        path = re.sub(r"\{[^}]+\}", "1", template)
        for headers in ({}, admin):
            for body in (deep, deep_object):
                response = httpx.request(
                    method, server.url + path, content=body, headers={**headers, "Content-Type": "application/json"}
                )
                assert response.status_code == 400, (method, path, response.status_code, response.text)
                assert response.json() == {
                    "error": "ValidationError",
                    "message": "the request is invalid",
                    "details": [{"field": "body", "message": response.json()["details"][0]["message"]}],
                }
                assert "32" in response.json()["details"][0]["message"]
            allowed = httpx.request(
                method, server.url + path, content=just_allowed, headers={**admin, "Content-Type": "application/json"}
            )
            assert allowed.status_code < 500, (method, path, allowed.text)


# --- headers, Swagger UI, metrics, files ---------------------------------------------------------


def _page_paths(tmp_path: Path, item_id: str) -> list[str]:
    settings = settings_for(base_env(tmp_path / "pages"))
    app = create_app(build_container(settings, "all"))
    paths = set()
    for route in app.routes:
        if route.path.startswith(("/api/", "/static", "/metrics")) or route.path.endswith("stream"):
            continue
        if "GET" not in getattr(route, "methods", set()):
            continue
        paths.add(re.sub(r"\{[^}]+\}", item_id, route.path))
    return sorted(paths)


def test_every_page_has_the_security_headers_and_every_answer_nosniff(
    server: ServiceProcess, admin: dict[str, str], tmp_path: Path
) -> None:
    item = httpx.post(
        f"{server.url}/api/v1/inventory/items",
        json={"sku": f"HDR-{uuid.uuid4().hex[:8]}", "name": "Headers"},
        headers={**admin, "Prefer": "wait=10"},
        timeout=20,
    ).json()
    pages = _page_paths(tmp_path, item["id"])
    assert {"/", "/login", "/events", "/wall", "/schema/swagger"} <= set(pages), pages
    for path in pages:
        for headers in ({}, admin):
            response = httpx.get(server.url + path, headers=headers)
            assert response.status_code < 500, (path, response.status_code)
            csp = response.headers.get("Content-Security-Policy", "")
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (path, csp)
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert response.headers.get("X-Frame-Options") == "DENY", path
            assert response.headers.get("X-Content-Type-Options") == "nosniff", path
            assert response.headers.get("Referrer-Policy") == "same-origin", path
            if response.headers.get("content-type", "").startswith("text/html"):
                assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), f"inline script on {path}"
                assert not re.search(r"<style|\sstyle=|\shx-on", response.text), f"inline style or hx-on on {path}"
    for path in ("/api/v1/health", f"/api/v1/inventory/items/{item['id']}", "/api/v1/nowhere"):
        assert httpx.get(server.url + path, headers=admin).headers.get("X-Content-Type-Options") == "nosniff"


def test_the_api_explorer_loads_nothing_from_elsewhere(server: ServiceProcess) -> None:
    page = httpx.get(f"{server.url}/schema/swagger")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith(("/", "data:")) for source in sources), sources
    for source in sources:
        if source.startswith("/"):
            assert httpx.get(server.url + source).status_code == 200, source
    assert httpx.get(f"{server.url}/schema/openapi.json").status_code == 200


def test_metrics_need_the_token_when_one_is_set(server: ServiceProcess) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    assert httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200 and "inventory_commands_accepted_total" in answer.text


def test_data_files_are_private_after_a_fresh_start(server: ServiceProcess, admin: dict[str, str]) -> None:
    httpx.post(
        f"{server.url}/api/v1/inventory/items",
        json={"sku": f"MODE-{uuid.uuid4().hex[:8]}", "name": "Modes"},
        headers={**admin, "Prefer": "wait=10"},
        timeout=20,
    )
    data_dir = Path(server.env["INVENTORY_DATA_DIR"])
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    files: dict[str, Any] = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data_dir.iterdir()}
    for name in ("users.db", "commands.db", "inventory.db", "eventlog.db", "initial-admin-password"):
        assert name in files, sorted(files)
    assert "inventory.db-wal" in files and "inventory.db-shm" in files, sorted(files)
    assert {name: mode for name, mode in files.items() if mode != 0o600} == {}
