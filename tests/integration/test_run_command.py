"""The README's run command: every role in one process on the embedded log, no Kafka, no Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse

from tests.support.services import REPO, free_port

ITEMS = "/api/v1/inventory/items"


def test_scripts_run_serves_the_api_on_the_embedded_log_and_applies_commands(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVENTORY_")} | {
        "INVENTORY_DATA_DIR": str(tmp_path / "data"),
        "INVENTORY_ADMIN_PASSWORD": "first-admin-pass",
    }
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        ["bash", "scripts/run.sh", "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "the run command did not come up"
            time.sleep(0.2)
        assert "Created user 'admin'" in (tmp_path / "run.log").read_text()
        token = httpx.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": "first-admin-pass"})
        headers = {"Authorization": f"Bearer {token.json()['token']}"}
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=30.0)) as sse_client,
            connect_sse(sse_client, "GET", f"{base}/api/v1/inventory/stream", headers=headers) as stream,
        ):
            created = httpx.post(
                f"{base}{ITEMS}", json={"sku": "RUN-1", "name": "First", "quantity": 3},
                headers={**headers, "Prefer": "wait=10"},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            first = next(e for e in stream.iter_sse() if e.event == "item")
            assert json.loads(first.data)["item"]["sku"] == "RUN-1"
        item = httpx.get(f"{base}{ITEMS}/sku/RUN-1", headers=headers).json()
        assert item["quantity"] == 3
        ready = httpx.get(f"{base}/api/v1/ready").json()
        assert (
            ready["status"] == "ok"
            and "event_log" in ready["checks"]
            and ready["checks"]["cache"]["kind"] == "in-process"
        )
        assert (tmp_path / "data" / "eventlog.db").exists() and (tmp_path / "data" / "inventory.db").exists()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
