"""CSV imports through the real split stack (command, listener and query processes on Kafka and
Redis): a file over the limit is refused whole, the same file twice applies once, a store-limited
user cannot import other stores' rows, and a command process killed (SIGKILL) in the middle of an
import resumes it on restart, with a report that says exactly what was applied.

One stack serves the module; every test makes its own items.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.app import PASSWORD
from tests.support.processes import run_cli
from tests.support.services import RedisServer
from tests.support.stack import Stack, split_stack
from tests.support.waiting import wait_until

IMPORTS = "/api/v1/imports"
ITEMS = "/api/v1/inventory/items"
MAX_BYTES = 1024 * 1024


class ImportApi:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(timeout=120)
        self.manager = stack.token("manager")

    def upload(self, kind: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.client.post(
            f"{self.stack.command.url}{IMPORTS}",
            data={"kind": kind},
            files={"file": ("stock.csv", content, "text/csv")},
            headers=headers or self.manager,
        )

    def preview(self, kind: str, content: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.upload(kind, content, headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def confirm(self, import_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.client.post(
            f"{self.stack.command.url}{IMPORTS}/{import_id}/confirm", headers=headers or self.manager
        )

    def status(self, import_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.client.get(f"{self.stack.command.url}{IMPORTS}/{import_id}", headers=headers or self.manager)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_done(self, import_id: str, timeout: float = 180, headers: dict[str, str] | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def done() -> dict[str, Any] | None:
            found.update(self.status(import_id, headers))
            return found if found["state"] == "done" else None

        wait_until(done, timeout=timeout, interval=0.2)
        return found

    def report(self, import_id: str) -> list[dict[str, str]]:
        response = self.client.get(f"{self.stack.command.url}{IMPORTS}/{import_id}/report.csv", headers=self.manager)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(response.text)))

    def item(self, sku: str, quantity: int = 0) -> dict[str, Any]:
        return self.stack.create_item(self.manager, sku=sku, name=f"{sku} name", quantity=quantity)

    def quantity(self, item_id: str, location: str = "MAIN") -> int:
        rows = sqlite3.connect(self.stack.data_dir / "inventory.db").execute(
            "SELECT quantity FROM stock_levels WHERE item_id = ? AND location = ?", (item_id, location)
        )
        found = rows.fetchone()
        return int(found[0]) if found else 0


def receipts(sku: str, count: int, *, location: str = "MAIN") -> bytes:
    """``count`` rows receiving one unit each (distinct notes: no row repeats another)."""
    lines = ["sku,location,quantity,reason,note", *(f"{sku},{location},1,received,line {n}" for n in range(count))]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def imports(
    kafka_bootstrap: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ImportApi]:
    root = tmp_path_factory.mktemp("imports")
    (root / "data").mkdir()
    with split_stack(
        kafka_bootstrap, redis_server.url, root / "data", root, INVENTORY_IMPORT_MAX_BYTES=str(MAX_BYTES)
    ) as stack:
        run_cli(
            stack.env, "users", "add", "s1manager", "--role", "manager", "--password", PASSWORD, "--locations", "S001"
        )
        api = ImportApi(stack)
        try:
            yield api
        finally:
            api.client.close()


def _stored_imports(api: ImportApi) -> int:
    path = api.stack.data_dir / "imports.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0])


def test_a_file_10_mb_over_the_limit_is_a_413_and_nothing_is_stored(imports: ImportApi) -> None:
    before = _stored_imports(imports)
    big = b"sku,location,counted\r\n" + b"A,MAIN,1\r\n" * ((MAX_BYTES + 10 * 1024 * 1024) // 10)
    try:
        response = imports.upload("counts", big)
    except httpx.HTTPError as exc:  # pragma: no cover - the answer must come before the upload ends
        raise AssertionError(f"no answer to an upload over the limit: {exc!r}") from None
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "PayloadTooLarge"
    assert str(MAX_BYTES) in body["message"]
    # Just over the file limit (inside the multipart allowance): the same refusal, from the app.
    response = imports.upload("counts", b"sku,location,counted\r\n" + b"A" * MAX_BYTES)
    assert response.status_code == 413, response.text
    assert response.json()["details"] == {"max_bytes": MAX_BYTES}
    assert _stored_imports(imports) == before


def test_bad_files_are_refused_whole_and_bad_rows_are_listed(imports: ImportApi) -> None:
    before = _stored_imports(imports)
    for content, expected in [
        (b"", "empty"),
        (b"sku,location,counted\r\n", "header but no rows"),
        (b"sku,counted\r\nA,1\r\n", "missing column location"),
        ("sku,location,counted,note\r\nA,MAIN,1,caf\xe9\r\n".encode("latin-1"), "not UTF-8"),
        (b"sku,location,counted\r\n" + b",".join([b"1"] * 10_000) + b"\r\n", "at most 50"),
    ]:
        response = imports.upload("counts", content)
        assert response.status_code == 400, response.text
        assert expected in response.json()["message"]
    assert _stored_imports(imports) == before

    sku = f"IMP-{uuid.uuid4().hex[:8]}"
    imports.item(sku)
    preview = imports.preview(
        "counts", f"sku;location;counted\r\n{sku};MAIN;3\r\n{sku};main;4\r\nNOPE-X;S009;x\r\n".encode()
    )
    assert (preview["rows"], preview["valid_rows"], preview["error_rows"], preview["state"]) == (3, 1, 2, "previewed")
    assert {(e["row"], e["column"]) for e in preview["errors"]} == {
        (3, "sku"),
        (4, "counted"),
        (4, "location"),
        (4, "sku"),
    }
    rows = imports.client.get(
        f"{imports.stack.command.url}{preview['rows_url']}", params={"status": "error"}, headers=imports.manager
    ).json()
    assert [row["row"] for row in rows["rows"]] == [3, 4]


def test_the_same_file_twice_applies_once(imports: ImportApi) -> None:
    sku = f"IMP-{uuid.uuid4().hex[:8]}"
    item = imports.item(sku, quantity=10)
    content = receipts(sku, 40)

    first = imports.preview("adjustments", content)
    assert imports.confirm(first["id"]).status_code == 202
    done = imports.wait_done(first["id"])
    assert (done["applied"], done["rejected"]) == (40, 0)
    wait_until(lambda: imports.quantity(item["id"]) == 50, timeout=30)

    second = imports.preview("adjustments", content)
    assert second["sha256"] == first["sha256"]
    assert imports.confirm(second["id"]).status_code == 202
    again = imports.wait_done(second["id"])
    assert again["applied"] == 40
    report = imports.report(second["id"])
    assert {line["reason"] for line in report} == {"already applied by an earlier import of this file"}
    # The same commands as the first time: nothing applied twice.
    first_commands = {line["row"]: line["command_id"] for line in imports.report(first["id"])}
    assert {line["row"]: line["command_id"] for line in report} == first_commands
    time.sleep(2)  # a second application would have landed by now
    assert imports.quantity(item["id"]) == 50
    # Confirming an import twice is refused.
    assert imports.confirm(second["id"]).status_code == 409


def test_the_same_file_from_another_user_applies_nothing_twice(imports: ImportApi) -> None:
    """Idempotency keys belong to the user who sent them (and live a day); the stored rows of the
    earlier import do not, so the same stock take sent by a colleague is not applied again."""
    sku = f"IMP-{uuid.uuid4().hex[:8]}"
    item = imports.item(sku, quantity=5)
    content = receipts(sku, 12)
    first = imports.preview("adjustments", content)
    assert imports.confirm(first["id"]).status_code == 202
    assert imports.wait_done(first["id"])["applied"] == 12
    wait_until(lambda: imports.quantity(item["id"]) == 17, timeout=30)

    admin = imports.stack.token("admin")
    second = imports.preview("adjustments", content, headers=admin)
    assert imports.confirm(second["id"], headers=admin).status_code == 202
    assert imports.wait_done(second["id"], headers=admin)["applied"] == 12
    time.sleep(2)  # a second application would have landed by now
    assert imports.quantity(item["id"]) == 17


def test_a_store_limited_user_cannot_import_other_stores_rows(imports: ImportApi) -> None:
    sku = f"IMP-{uuid.uuid4().hex[:8]}"
    item = imports.item(sku)
    limited = imports.stack.token("s1manager")
    content = f"sku,location,counted\r\n{sku},S001,7\r\n{sku},S002,9\r\n{sku},MAIN,9\r\n".encode()
    preview = imports.preview("counts", content, headers=limited)
    assert (preview["valid_rows"], preview["error_rows"]) == (1, 2)
    assert {(e["row"], e["column"]) for e in preview["errors"]} == {(3, "location"), (4, "location")}
    assert imports.confirm(preview["id"], headers=limited).status_code == 202
    assert imports.wait_done(preview["id"], headers=limited)["applied"] == 1
    wait_until(lambda: imports.quantity(item["id"], "S001") == 7, timeout=30)
    assert imports.quantity(item["id"], "S002") == 0
    # New items change every store: not for a store-limited user.
    items = imports.preview("items", f"sku,name\r\n{sku}-NEW,New\r\n".encode(), headers=limited)
    assert items["valid_rows"] == 0
    # A clerk does not import at all; nobody else sees or confirms someone's import.
    assert imports.upload("counts", content, headers=imports.stack.token("clerk")).status_code == 403
    other = imports.stack.token("admin")
    assert imports.confirm(preview["id"], headers=other).status_code in (404, 409)


def test_a_command_process_killed_mid_import_resumes_and_reports_exactly(imports: ImportApi) -> None:
    sku = f"IMP-{uuid.uuid4().hex[:8]}"
    item = imports.item(sku)
    rows = 6000
    preview = imports.preview("adjustments", receipts(sku, rows))
    assert preview["valid_rows"] == rows
    assert imports.confirm(preview["id"]).status_code == 202

    def started() -> dict[str, Any] | None:
        found = imports.status(preview["id"])
        return found if found["submitted"] + found["applied"] > 0 else None

    at_kill = wait_until(started, timeout=60, interval=0.01)
    imports.stack.command.kill()
    # Killed in the middle: rows were still to be submitted or decided.
    assert at_kill["pending"] > 0, at_kill
    imports.stack.command.start()

    done = imports.wait_done(preview["id"], timeout=300)
    assert (done["applied"], done["rejected"], done["pending"]) == (rows, 0, 0)
    wait_until(lambda: imports.quantity(item["id"]) == rows, timeout=60)
    report = imports.report(preview["id"])
    assert len(report) == rows
    assert {line["status"] for line in report} == {"applied"}
    assert len({line["command_id"] for line in report}) == rows
    # Exactly once: one adjustment in the history per row, however often its event was published.
    with sqlite3.connect(imports.stack.data_dir / "inventory.db") as conn:
        entries = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT command_id) FROM history WHERE item_id = ? AND event_type = ?",
            (item["id"], "inventory.stock.adjusted"),
        ).fetchone()
    assert tuple(entries) == (rows, rows)
    time.sleep(2)
    assert imports.quantity(item["id"]) == rows
