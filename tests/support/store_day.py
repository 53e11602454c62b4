"""A store's day as an auditor checks it: the domain's own replay of a stream of events, the
database's state in the same shape, and the invariants that must hold at every commit.

The replay keeps whole items in memory (every level, transfer and reservation) and asks the
catalogue's decisions (pure domain code) one event at a time, with no listener code in between:
what the database must equal after a listener loaded, planned and wrote the same events in
batches, crashed and resumed.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.domain import model
from app.domain.catalogue import BY_EVENT_TYPE, DecisionContext
from app.domain.events import Event, EventType
from app.domain.rules import moment_text

NOW = "2026-01-01T00:00:00.000Z"

TRANSFERRED = EventType.STOCK_TRANSFERRED.value
SHIPPED = EventType.TRANSFER_SHIPPED.value
RECEIVED = EventType.TRANSFER_RECEIVED.value
CANCELLED = EventType.TRANSFER_CANCELLED.value
TRANSFER_TYPES = (TRANSFERRED, SHIPPED, RECEIVED, CANCELLED)
EXPIRED = EventType.RESERVATION_EXPIRED.value
COMMITTED = EventType.RESERVATION_COMMITTED.value


def moment(seconds_from_now: float) -> str:
    """A time in the data's one format (compares as text), ``seconds_from_now`` ahead."""
    return moment_text(datetime.now(UTC) + timedelta(seconds=seconds_from_now))


@dataclass
class Replay:
    """The state a stream of events must lead to, decided by the domain one event at a time."""

    items: dict[str, model.Item] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    # History rows the listener writes: one per movement, one for a change that moves nothing.
    history_rows: int = 0
    applied_events: int = 0

    def apply_all(self, events: list[Event]) -> Replay:
        for event in events:
            self.apply(event)
        return self

    def apply(self, event: Event) -> None:
        decision = self._decide(event)
        if isinstance(decision, model.Rejected):
            self.statuses[event.command_id] = f"rejected:{decision.reason.value}"
            return
        self.statuses[event.command_id] = "applied"
        if decision.changed:
            self.items[event.item_id] = decision.item
            self.history_rows += max(1, len(decision.movements))
            self.applied_events += 1

    def _decide(self, event: Event) -> model.Decision:
        # The catalogue's own decision of each command (pure domain code): the listener's batching,
        # loading and writing are what the comparison checks.
        context = DecisionContext(now=NOW, sku_owner=self._sku_owner)
        return BY_EVENT_TYPE[event.event_type].decide(self.items.get(event.item_id), event, context)

    def _sku_owner(self, sku: str) -> str | None:
        return next((i.id for i in self.items.values() if i.sku == sku and not i.deleted), None)

    def state(self) -> dict[str, dict[Any, Any]]:
        """The same shape as ``database_state``."""
        return {
            "items": {i.id: (i.quantity, i.reserved, i.in_transit, i.version) for i in self.items.values()},
            "levels": {
                (i.id, lv.location): (lv.quantity, lv.reserved) for i in self.items.values() for lv in i.levels.values()
            },
            "transfers": {
                t.id: (t.item_id, t.from_location, t.to_location, t.quantity, t.state.value, t.received)
                for i in self.items.values()
                for t in i.transfers.values()
            },
            "reservations": {
                r.id: (r.item_id, r.location, r.quantity, r.reserved, r.state.value)
                for i in self.items.values()
                for r in i.reservations.values()
            },
            "outcomes": dict(self.statuses),
        }


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)


def database_state(db: Path) -> dict[str, dict[Any, Any]]:
    """Items, levels, transfers, reservations and outcomes, read in one snapshot."""
    conn = _connect(db)
    try:
        conn.execute("BEGIN")
        state: dict[str, dict[Any, Any]] = {
            "items": {
                row[0]: tuple(row[1:])
                for row in conn.execute("SELECT id, quantity, reserved, in_transit, version FROM items")
            },
            "levels": {
                (row[0], row[1]): (row[2], row[3])
                for row in conn.execute("SELECT item_id, location, quantity, reserved FROM stock_levels")
            },
            "transfers": {
                row[0]: tuple(row[1:])
                for row in conn.execute(
                    "SELECT id, item_id, from_location, to_location, quantity, state, received FROM transfers"
                )
            },
            "reservations": {
                row[0]: tuple(row[1:])
                for row in conn.execute("SELECT id, item_id, location, quantity, reserved, state FROM reservations")
            },
            "outcomes": {
                cid: status if reason is None else f"{status}:{reason}"
                for cid, status, reason in conn.execute("SELECT command_id, status, reason FROM command_outcomes")
            },
        }
        conn.execute("COMMIT")
        return state
    finally:
        conn.close()


def differences(actual: dict[str, dict[Any, Any]], expected: dict[str, dict[Any, Any]], limit: int = 10) -> list[str]:
    """What differs, section by section and key by key (the first ``limit`` of each section)."""
    found: list[str] = []
    for section in expected:
        have, want = actual.get(section, {}), expected[section]
        keys = sorted(set(have) | set(want), key=str)
        wrong = [f"{section} {key}: database {have.get(key)} replay {want.get(key)}" for key in keys
                 if have.get(key) != want.get(key)]  # fmt: skip
        found += wrong[:limit] + ([f"{section}: ... {len(wrong) - limit} more"] if len(wrong) > limit else [])
    return found


def invariant_problems(db: Path) -> list[str]:
    """Every invariant of a store's day that must hold at every commit, read in one snapshot:

    - an item's totals are the sums of its levels, ``in_transit`` the units of its open transfers;
    - every level equals the sum of its history (no change without its audit line), and holds
      exactly what its open reservations hold;
    - units are conserved: on hand + in transit + lost in transit equals what came in by other
      commands than transfers;
    - every transfer is whole: its history rows (one-step: both levels; shipped: the shipment and
      at most one receipt or cancellation) match its row;
    - never more reserved than on hand after any change.
    """
    problems: list[str] = []
    conn = _connect(db)
    try:
        conn.execute("BEGIN")
        items = {row[0]: row[1:] for row in conn.execute("SELECT id, quantity, reserved, in_transit FROM items")}
        levels: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)
        for item_id, location, quantity, reserved in conn.execute(
            "SELECT item_id, location, quantity, reserved FROM stock_levels"
        ):
            levels[item_id][location] = (quantity, reserved)
        history_by_level = {
            (row[0], row[1]): (row[2], row[3])
            for row in conn.execute(
                "SELECT item_id, location, SUM(quantity_delta), SUM(reserved_delta) FROM history "
                "WHERE location IS NOT NULL GROUP BY item_id, location"
            )
        }
        from_others = dict(
            conn.execute(
                "SELECT item_id, SUM(quantity_delta) FROM history WHERE event_type NOT IN (?, ?, ?, ?) "
                "GROUP BY item_id",
                TRANSFER_TYPES,
            ).fetchall()
        )
        open_held = {
            (row[0], row[1]): row[2]
            for row in conn.execute(
                "SELECT item_id, location, SUM(quantity) FROM reservations WHERE state = 'open' GROUP BY 1, 2"
            )
        }
        transfer_rows = conn.execute(
            "SELECT id, item_id, from_location, to_location, quantity, state, received FROM transfers"
        ).fetchall()
        transfer_history: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for reference, event_type, location, delta in conn.execute(
            "SELECT reference, event_type, location, quantity_delta FROM history WHERE event_type IN (?, ?, ?, ?)",
            TRANSFER_TYPES,
        ):
            transfer_history[reference].append((event_type, location, delta))
        oversold = conn.execute(
            "SELECT COUNT(*) FROM history WHERE reserved_after > quantity_after OR reserved_after < 0"
        ).fetchone()[0]
        conn.execute("COMMIT")
    finally:
        conn.close()

    in_transit: dict[str, int] = defaultdict(int)
    lost: dict[str, int] = defaultdict(int)
    for transfer_id, item_id, source, target, quantity, state, received in transfer_rows:
        if state == "in_transit":
            in_transit[item_id] += quantity
            expected = [(SHIPPED, source, -quantity)]
        elif state == "cancelled":
            expected = [(SHIPPED, source, -quantity), (CANCELLED, source, quantity)]
        elif (TRANSFERRED, source, -quantity) in transfer_history[transfer_id]:
            expected = [(TRANSFERRED, source, -quantity), (TRANSFERRED, target, quantity)]
        else:
            lost[item_id] += quantity - received
            expected = [(SHIPPED, source, -quantity), (RECEIVED, target, received)]
        if sorted(transfer_history.pop(transfer_id, [])) != sorted(expected):
            problems.append(f"transfer {transfer_id} ({state}) is not whole in the history")
    for reference, rows in transfer_history.items():
        problems.append(f"history rows of transfer {reference} without its transfer row: {rows}")

    for item_id, (quantity, reserved, item_in_transit) in items.items():
        on_hand = sum(q for q, _ in levels[item_id].values())
        held = sum(r for _, r in levels[item_id].values())
        if (quantity, reserved) != (on_hand, held):
            problems.append(f"item {item_id}: totals {quantity}/{reserved}, levels add up to {on_hand}/{held}")
        if item_in_transit != in_transit[item_id]:
            problems.append(f"item {item_id}: in_transit {item_in_transit}, open transfers hold {in_transit[item_id]}")
        if on_hand + item_in_transit + lost[item_id] != from_others.get(item_id, 0):
            problems.append(
                f"item {item_id}: on hand {on_hand} + in transit {item_in_transit} + lost {lost[item_id]} "
                f"!= {from_others.get(item_id, 0)} brought in by other commands than transfers"
            )
        for location, (q, r) in levels[item_id].items():
            if history_by_level.get((item_id, location)) != (q, r):
                problems.append(
                    f"level {item_id}/{location} is {q}/{r}, its history adds up to "
                    f"{history_by_level.get((item_id, location))}"
                )
            if open_held.get((item_id, location), 0) != r:
                problems.append(
                    f"level {item_id}/{location} reserves {r}, its open reservations hold "
                    f"{open_held.get((item_id, location), 0)}"
                )
    if oversold:
        problems.append(f"{oversold} history rows with more reserved than on hand")
    return problems


def history_lines(db: Path) -> list[tuple[Any, ...]]:
    """Every history row without its row id and applied time, in a fixed order: what a replay of
    the log must write again."""
    conn = _connect(db)
    try:
        rows = conn.execute(
            "SELECT item_id, event_type, location, quantity_delta, reserved_delta, quantity_after, reserved_after, "
            "item_version, actor, command_id, event_id, note, occurred_at, reason, reference, expected FROM history"
        ).fetchall()
    finally:
        conn.close()
    return sorted(rows, key=repr)
