"""``python -m bench bulk`` at its smallest size on a Kafka stack, as a user runs it: it exits 0
and reports the import, the webhook deliveries and the export with every row accounted for.

No speed is asserted here: the figures depend on the machine; ``bench/results/`` keeps them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.kafka
@pytest.mark.redis
def test_bench_bulk_small(tmp_path: Path) -> None:
    out = tmp_path / "bulk.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "bulk", "--mode", "kafka", "--size", "small", "--out", str(out),
         "--work-dir", str(tmp_path / "work")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"bench exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    data = json.loads(out.read_text())
    assert data["run"]["kind"] == "bulk" and data["run"]["size"] == "small" and data["run"]["interrupted"] is None
    sizes, sections = data["run"]["sizes"], data["sections"]

    imported = sections["import"]
    assert imported["rows"] == sizes["import_rows"] and imported["state"] == "done"
    assert (imported["applied"], imported["rejected"]) == (imported["rows"], 0)
    assert imported["rows_per_s"] > 0
    assert imported["dashboard_idle"]["latency"]["n"] > 0 and imported["dashboard_during_import"]["latency"]["n"] > 0

    hooks = sections["webhooks"]
    assert hooks["all_arrived"] is True and hooks["deliveries"] == sizes["webhook_commands"]
    assert hooks["bad_signatures"] == 0
    assert hooks["commit_to_delivery"]["n"] == hooks["deliveries"]

    exported = sections["export"]
    assert exported["rows"] == exported["levels"] == sizes["export_levels"]
    assert exported["chunked"] is True
    assert exported["rss_peak_during_mib"] > 0 and exported["health_during_export"]["latency"]["n"] > 0

    shown = subprocess.run(
        [sys.executable, "-m", "bench", "show", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and "CSV export" in shown.stdout and "Webhooks" in shown.stdout
