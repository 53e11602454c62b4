"""Stock alerts: when a level crosses into low, into out, or back in stock, decided once.

Pure. The listener keeps each level's alert state (``ok``, ``low``, ``out``) on its row and calls
``next_alert`` with the level's available units after every change it applies, inside the same
transaction. A level that bounces around its threshold must not alert on every change, so the
way back needs a margin (hysteresis):

* ``ok`` → ``low`` when available falls to the threshold or below: alert ``low_stock``;
* any → ``out`` when nothing is available: alert ``out_of_stock``;
* ``out`` → back when available is above the margin (``recovery_margin``): alert
  ``back_in_stock``, and the state becomes ``low`` or ``ok`` by the same margin rule;
* ``low`` → ``ok`` silently once available is above threshold + margin (no alert kind for it:
  a level that recovers from low is good news nobody asked to be paged about).

The margin is a fifth of the threshold, at least one unit: threshold 10 → low at 10, ok again at
13 (above 12); out at 0, back in stock at 3 (above 2). A level going 0, 1, 0, 1 alerts once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AlertState(StrEnum):
    OK = "ok"
    LOW = "low"
    OUT = "out"


class AlertKind(StrEnum):
    LOW_STOCK = "low_stock"
    OUT_OF_STOCK = "out_of_stock"
    BACK_IN_STOCK = "back_in_stock"


@dataclass(frozen=True)
class AlertDecision:
    state: AlertState
    alert: AlertKind | None


# The threshold of an item without its own when nothing else is said: the default of
# INVENTORY_LOW_STOCK_THRESHOLD (app/settings.py), which the listener is given.
DEFAULT_THRESHOLD = 5


def recovery_margin(threshold: int) -> int:
    """Units above the threshold (for low) or above zero (for out) that count as recovered."""
    return max(1, threshold // 5)


def next_alert(state: AlertState, available: int, threshold: int) -> AlertDecision:
    """The level's alert state after a change that left ``available`` units, and the alert the
    change raises (None for most changes). ``threshold`` is the item's, or the default."""
    margin = recovery_margin(threshold)
    if available <= 0:
        if state is AlertState.OUT:
            return AlertDecision(AlertState.OUT, None)
        return AlertDecision(AlertState.OUT, AlertKind.OUT_OF_STOCK)
    if state is AlertState.OUT:
        if available <= margin:
            return AlertDecision(AlertState.OUT, None)
        back = AlertState.OK if available > threshold + margin else AlertState.LOW
        return AlertDecision(back, AlertKind.BACK_IN_STOCK)
    if state is AlertState.LOW:
        return AlertDecision(AlertState.OK if available > threshold + margin else AlertState.LOW, None)
    if available <= threshold:
        return AlertDecision(AlertState.LOW, AlertKind.LOW_STOCK)
    return AlertDecision(AlertState.OK, None)


def initial_state(available: int, threshold: int) -> AlertState:
    """The state of a level that has none yet (a new level, or a file from before alerts):
    what it is now, without an alert."""
    if available <= 0:
        return AlertState.OUT
    return AlertState.LOW if available <= threshold else AlertState.OK
