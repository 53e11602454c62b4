"""Latency summaries: nearest-rank percentiles in milliseconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Summary = dict[str, Any]


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(seconds: Sequence[float]) -> Summary:
    """Count, mean, p50, p90, p99, p99.9 and max of durations given in seconds, as milliseconds.

    With fewer than 1,000 samples p99.9 is the maximum, and is marked as such by ``n``.
    """
    ordered = sorted(seconds)
    if not ordered:
        return {"n": 0}

    def ms(value: float) -> float:
        return round(value * 1000.0, 3)

    return {
        "n": len(ordered),
        "mean_ms": ms(sum(ordered) / len(ordered)),
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "p999_ms": ms(percentile(ordered, 0.999)),
        "max_ms": ms(ordered[-1]),
    }


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0
