"""Low stock across the chain, as pure pieces: what a row of the low-stock page says, and which
store to move stock from."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from app.domain.rules import StockState, stock_state


class LowStockRow(msgspec.Struct, frozen=True):
    """One level that is low or out, and the store with the most of the item to spare."""

    item_id: str
    sku: str
    name: str
    location: str
    available: int
    quantity: int
    reserved: int
    # The threshold in force: the item's own, else the default.
    threshold: int
    state: str
    updated_at: str
    # The other store with the most available (None when no other store has any).
    best_location: str | None = None
    best_available: int | None = None


def best_source(ranked: Sequence[tuple[str, int]], location: str) -> tuple[str | None, int | None]:
    """From an item's locations with the most available, most first (at least the best two), the
    one to ask for stock: never the low store itself, and only one that has some to give."""
    for code, available in ranked:
        if code != location and available > 0:
            return code, available
    return None, None


def low_row(
    *,
    item_id: str,
    sku: str,
    name: str,
    threshold: int | None,
    location: str,
    quantity: int,
    reserved: int,
    updated_at: str,
    default_threshold: int,
    ranked: Sequence[tuple[str, int]],
) -> LowStockRow | None:
    """The row of a level, or None when it is not low or out (it leaves the page)."""
    available = quantity - reserved
    state = stock_state(available, threshold, default_threshold)
    if state is StockState.OK:
        return None
    best, best_available = best_source(ranked, location)
    return LowStockRow(
        item_id=item_id, sku=sku, name=name, location=location, available=available, quantity=quantity,
        reserved=reserved, threshold=default_threshold if threshold is None else threshold, state=state.value,
        updated_at=updated_at, best_location=best, best_available=best_available,
    )  # fmt: skip


def low_ranks(thresholds: Sequence[int]) -> list[tuple[int, int]]:
    """The values attention_rank (and ATTENTION_ORDER in SQL) can give a level that is low or
    out, most urgent first, as (group, available - threshold), for the thresholds in force
    (ascending): out of stock (available is never below 0) with each threshold, largest first;
    then low, from furthest below its threshold."""
    if not thresholds:
        return []
    out = [(0, -threshold) for threshold in reversed(thresholds)]
    return out + [(1, k) for k in range(1 - thresholds[-1], 1)]
