"""The Go prototypes' figures, the targets this product must meet, and which a run met.

The prototypes (gin, sarama, go-redis) were measured on this kind of machine: 2 cores, Kafka and
Redis on the same machine, ``hey`` with 64 connections unless said otherwise. Their reserve at
64 connections crashed ("concurrent map read and map write").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Result = dict[str, Any]

ITEMS = "/api/v1/inventory/items"


@dataclass(frozen=True)
class VersusRow:
    name: str
    service: str  # query | command
    path: str  # {item}: the first item of the pool
    clients: int
    ok: int
    body: dict[str, Any] | None
    go_per_s: float | None
    go_p99_ms: float | None
    min_per_s: float | None = None
    max_p50_ms: float | None = None
    max_p99_ms: float | None = None

    def describe(self) -> Result:
        return {
            "name": self.name,
            "go": {"per_s": self.go_per_s, "p99_ms": self.go_p99_ms},
            "target": {"min_per_s": self.min_per_s, "max_p50_ms": self.max_p50_ms, "max_p99_ms": self.max_p99_ms},
        }

    def met(self, result: Result) -> bool:
        latency = result.get("latency", {})
        checks = [
            self.min_per_s is None or result.get("per_s", 0) >= self.min_per_s,
            self.max_p50_ms is None or latency.get("p50_ms", float("inf")) <= self.max_p50_ms,
            self.max_p99_ms is None or latency.get("p99_ms", float("inf")) <= self.max_p99_ms,
            not result.get("other_statuses"),
        ]
        return all(checks)


RESERVE = {"quantity": 1}
VERSUS_ROWS = (
    VersusRow("GET stock of one item, 64", "query", ITEMS + "/{item}/stock", 64, 200, None, 11_119, 16,
              min_per_s=11_000, max_p99_ms=15),
    VersusRow("GET list page, 64", "query", ITEMS + "?page=1&page_size=20", 64, 200, None, None, None,
              min_per_s=3_000),
    VersusRow("reserve, 1", "command", ITEMS + "/{item}/reserve", 1, 202, RESERVE, 671, None, max_p50_ms=1.5),
    VersusRow("reserve, 4", "command", ITEMS + "/{item}/reserve", 4, 202, RESERVE, 946, None, min_per_s=1_500),
    VersusRow("reserve, 64", "command", ITEMS + "/{item}/reserve", 64, 202, RESERVE, None, None,
              min_per_s=3_000, max_p99_ms=50),
)  # fmt: skip

# The other targets, read from the run's sections.
CATCH_UP_MIN_PER_S = 15_000
FRESHNESS_RATE = 1_000
FRESHNESS_MAX_P99_MS = 25
FANOUT_SUBSCRIBERS = 5_000
FANOUT_MAX_P99_MS = 250
RSS_MAX_MIB = 150


def targets(sections: Result) -> list[Result]:
    """Every target of the run with its figure and whether it was met (None: not measured)."""
    found: list[Result] = []
    for row in sections.get("versus", {}).get("rows", []):
        latency = row.get("latency", {})
        figure = f"{row.get('per_s')}/s, p50 {latency.get('p50_ms')} ms, p99 {latency.get('p99_ms')} ms"
        found.append({"target": row["name"], "figure": figure, "met": row.get("target_met")})
    catch_up = sections.get("catch_up", {})
    if "events_per_s" in catch_up:
        found.append(
            {
                "target": f"listener catch-up >= {CATCH_UP_MIN_PER_S:,}/s",
                "figure": f"{catch_up['events_per_s']}/s",
                "met": catch_up["events_per_s"] >= CATCH_UP_MIN_PER_S,
            }
        )
    for load in sections.get("freshness", {}).get("loads", []):
        if load.get("offered_per_s") != FRESHNESS_RATE:
            continue
        for kind in ("freshness_get", "freshness_sse"):
            p99 = load.get(kind, {}).get("p99_ms")
            found.append(
                {
                    "target": f"{kind} p99 <= {FRESHNESS_MAX_P99_MS} ms at {FRESHNESS_RATE:,}/s",
                    "figure": f"{p99} ms",
                    "met": p99 is not None and p99 <= FRESHNESS_MAX_P99_MS,
                }
            )
    for group in sections.get("fanout", {}).get("groups", []):
        if group.get("subscribers") != FANOUT_SUBSCRIBERS:
            continue
        p99 = group.get("latency", {}).get("p99_ms")
        found.append(
            {
                "target": f"SSE fan-out to {FANOUT_SUBSCRIBERS:,}, p99 <= {FANOUT_MAX_P99_MS} ms",
                "figure": f"{p99} ms",
                "met": p99 is not None and p99 <= FANOUT_MAX_P99_MS,
            }
        )
    memory = sections.get("memory", {})
    for name, mib in memory.get("rss_mib", {}).items():
        if name not in ("listener", "command", "query", "all"):
            continue
        found.append(
            {
                "target": f"{name} RSS <= {RSS_MAX_MIB} MiB with {memory.get('items'):,} items",
                "figure": f"{mib} MiB",
                "met": mib <= RSS_MAX_MIB,
            }
        )
    return found
