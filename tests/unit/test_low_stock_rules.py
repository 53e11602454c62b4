"""Low stock across the chain, the pure pieces: which store to ask, which levels are rows, and
the ranks the paged read walks (the same order as ATTENTION_ORDER)."""

from __future__ import annotations

import itertools

from app.domain.low_stock import best_source, low_ranks, low_row
from app.domain.rules import attention_rank


def test_the_best_source_is_another_store_with_stock() -> None:
    assert best_source([("MAIN", 40), ("S001", 3)], "S002") == ("MAIN", 40)
    # The low store itself is never its own source: the next best is.
    assert best_source([("S002", 12), ("MAIN", 9)], "S002") == ("MAIN", 9)
    assert best_source([("S002", 4), ("MAIN", 0)], "S002") == (None, None)
    assert best_source([], "S002") == (None, None)


def test_only_low_and_out_levels_are_rows() -> None:
    shared = {"item_id": "i", "sku": "A", "name": "a", "location": "S001", "updated_at": "t", "ranked": []}
    assert low_row(threshold=None, quantity=6, reserved=0, default_threshold=5, **shared) is None  # type: ignore[arg-type]
    low = low_row(threshold=None, quantity=6, reserved=1, default_threshold=5, **shared)  # type: ignore[arg-type]
    assert low is not None and (low.state, low.available, low.threshold) == ("low", 5, 5)
    out = low_row(threshold=2, quantity=3, reserved=3, default_threshold=5, **shared)  # type: ignore[arg-type]
    assert out is not None and (out.state, out.threshold) == ("out", 2)


def test_the_ranks_are_every_low_or_out_level_in_attention_order() -> None:
    thresholds = [0, 3, 10]
    levels = [
        (available, threshold)
        for threshold, available in itertools.product(thresholds, range(0, 12))
        if available <= threshold
    ]
    ranks = low_ranks(thresholds)
    # Each level has exactly one rank, and sorting by rank position is sorting by attention.
    position = {rank: n for n, rank in enumerate(ranks)}
    as_rank = {(a, t): (0 if a <= 0 else 1, attention_rank(a, t, 5)[1]) for a, t in levels}
    assert set(as_rank.values()) <= set(position)
    by_rank = sorted(levels, key=lambda level: position[as_rank[level]])
    by_attention = sorted(levels, key=lambda level: attention_rank(level[0], level[1], 5))
    assert [attention_rank(a, t, 5) for a, t in by_rank] == [attention_rank(a, t, 5) for a, t in by_attention]
    assert low_ranks([]) == []
