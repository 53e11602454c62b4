"""``python -m bench nodes`` at its smallest size, as a user runs it: it exits 0 and reports every
part (reads against one node and the shared address, fan-out, replica lag, a new node's catch-up)
with every change accounted for.

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
def test_bench_nodes_small(tmp_path: Path) -> None:
    out = tmp_path / "nodes.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "nodes", "--size", "small", "--out", str(out),
         "--work-dir", str(tmp_path / "work")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=420,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"bench exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    data = json.loads(out.read_text())
    assert data["run"]["kind"] == "nodes" and data["run"]["size"] == "small" and data["run"]["interrupted"] is None
    sizes, sections = data["run"]["sizes"], data["sections"]
    assert str(tmp_path) not in out.read_text(), "no machine paths in the result"

    setup = sections["setup"]
    assert setup["items"] == sizes["items"] and len(setup["query_nodes"]) == sizes["query_nodes"] == 2

    loads = sections["reads"]["loads"]
    assert set(loads) == {"one_node/stock", "one_node/list", "shared_address/stock", "shared_address/list"}
    for load in loads.values():
        assert load["requests"] > 0 and load["per_s"] > 0 and load["latency"]["n"] == load["requests"]

    fanout = sections["fanout"]
    assert fanout["connected"] == fanout["subscribers"] == sizes["fanout_subscribers"]
    assert sorted(fanout["per_node"].values()) == [sizes["fanout_subscribers"] // 2] * 2
    assert fanout["missing"] == 0 and fanout["deliveries"] == fanout["subscribers"] * fanout["commands"]
    assert set(fanout["latency_by_node"]) == set(setup["query_nodes"])

    lag = sections["lag"]
    assert lag["accepted"] == lag["sent"] > 0 and lag["unseen"] == 0
    assert set(lag["lag_by_node"]) == set(setup["query_nodes"])
    assert all(summary["n"] == lag["accepted"] for summary in lag["lag_by_node"].values())

    catch_up = sections["catch_up"]
    assert catch_up["levels"] == sizes["snapshot_levels"] and catch_up["replica_levels"] == catch_up["levels"]
    assert catch_up["node_start_to_caught_up_seconds"] >= catch_up["node_start_to_healthy_seconds"] >= 0

    shown = subprocess.run(
        [sys.executable, "-m", "bench", "show", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and "Replica lag" in shown.stdout and "SSE fan-out" in shown.stdout
