"""Correctness after a run, from the inventory database (read-only) and the command topics.

* oversold: a stock level with reserved > quantity (or a negative count) — must be 0;
* lost: a command that got a 202 (or was produced into the log by the harness) without an
  outcome in ``command_outcomes`` — must be 0;
* applied twice: an event id or command id with more than one history row, or more history rows
  than applied outcomes, or history for a rejected command — must be 0;
* every message in the command topics has exactly one outcome (unaccounted must be 0);
* unbalanced: an item whose totals differ from its levels, whose units in transit differ from
  its open transfers, or a level whose reserved units differ from its open reservations — must
  be 0 (the conservation rule of docs/decisions.md, checked on the database as it is).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.domain.events import COMMAND_TOPICS, EventType
from app.eventlog.topics import TOPICS


def read_only(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA query_only=ON")
    return conn


def scalar(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> int:
    row = conn.execute(sql, tuple(params)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def outcome_count(data_dir: Path) -> int:
    db = data_dir / "inventory.db"
    if not db.exists():
        return 0
    conn = read_only(db)
    try:
        return scalar(conn, "SELECT COUNT(*) FROM command_outcomes")
    except sqlite3.OperationalError:  # the listener has not created its tables yet
        return 0
    finally:
        conn.close()


def missing_outcomes(data_dir: Path, command_ids: set[str]) -> int:
    conn = read_only(data_dir / "inventory.db")
    try:
        known = {row[0] for row in conn.execute("SELECT command_id FROM command_outcomes")}
    finally:
        conn.close()
    return len(command_ids - known)


def embedded_topic_messages(data_dir: Path) -> int:
    conn = read_only(data_dir / "eventlog.db")
    try:
        marks = ", ".join("?" * len(COMMAND_TOPICS))
        return scalar(conn, f"SELECT COUNT(*) FROM records WHERE topic IN ({marks})", COMMAND_TOPICS)
    finally:
        conn.close()


async def _kafka_topic_messages(bootstrap: str, prefix: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # The application creates its topics with these partition counts (app/eventlog/topics.py).
    partitions = [
        TopicPartition(prefix + spec.name, partition)
        for spec in TOPICS
        if spec.name in COMMAND_TOPICS
        for partition in range(spec.partitions)
    ]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        return sum(int(ends[tp]) - int(starts[tp]) for tp in partitions)
    finally:
        await consumer.stop()


def kafka_topic_messages(bootstrap: str, prefix: str) -> int:
    """Messages in the command topics (the idempotent producer writes no control records)."""
    return asyncio.run(_kafka_topic_messages(bootstrap, prefix))


def wait_drained(data_dir: Path, expected: int, timeout: float) -> tuple[bool, float]:
    """Wait until the listener has an outcome for ``expected`` commands; (done, seconds waited)."""
    started = time.monotonic()
    while outcome_count(data_dir) < expected:
        if time.monotonic() - started > timeout:
            return False, time.monotonic() - started
        time.sleep(0.1)
    return True, time.monotonic() - started


def database_report(data_dir: Path, accepted: set[str]) -> dict[str, Any]:
    conn = read_only(data_dir / "inventory.db")
    try:
        oversold = scalar(
            conn, "SELECT COUNT(*) FROM stock_levels WHERE reserved > quantity OR reserved < 0 OR quantity < 0"
        )
        known = {row[0] for row in conn.execute("SELECT command_id FROM command_outcomes")}
        by_status = dict(conn.execute("SELECT status, COUNT(*) FROM command_outcomes GROUP BY status").fetchall())
        reasons = dict(
            conn.execute(
                "SELECT reason, COUNT(*) FROM command_outcomes WHERE status = 'rejected' GROUP BY reason"
            ).fetchall()
        )
        history_rows = scalar(conn, "SELECT COUNT(*) FROM history")
        # One history row per location a change moved (a one-step transfer moves two).
        duplicate_events = scalar(
            conn,
            "SELECT COUNT(*) FROM (SELECT event_id FROM history GROUP BY event_id, location HAVING COUNT(*) > 1)",
        )
        duplicate_commands = scalar(
            conn,
            "SELECT COUNT(*) FROM (SELECT command_id FROM history GROUP BY command_id, location HAVING COUNT(*) > 1)",
        )
        two_place_changes = scalar(
            conn,
            "SELECT COUNT(*) FROM command_outcomes WHERE status = 'applied' AND event_type = ?",
            (EventType.STOCK_TRANSFERRED.value,),
        )
        unbalanced = unbalanced_items(conn)
        rejected_with_history = scalar(
            conn,
            "SELECT COUNT(*) FROM history WHERE command_id IN "
            "(SELECT command_id FROM command_outcomes WHERE status = 'rejected')",
        )
        processed_events = scalar(conn, "SELECT COUNT(*) FROM processed_events")
        dead_letters = scalar(conn, "SELECT COUNT(*) FROM dead_letters")
        parked = scalar(conn, "SELECT COUNT(*) FROM parked_events")
    finally:
        conn.close()
    applied = int(by_status.get("applied", 0))
    extra_history = max(0, history_rows - applied - two_place_changes)
    return {
        "oversold": oversold,
        "lost": len(accepted - known),
        "applied_twice": duplicate_events + duplicate_commands + extra_history + rejected_with_history,
        "accepted_checked": len(accepted),
        "outcomes": len(known),
        "applied": applied,
        "rejected": int(by_status.get("rejected", 0)),
        "rejected_reasons": {str(k): v for k, v in reasons.items()},
        "history_rows": history_rows,
        "duplicate_event_ids": duplicate_events,
        "duplicate_command_ids": duplicate_commands,
        "history_rows_beyond_applied": extra_history,
        "rejected_with_history": rejected_with_history,
        "processed_events": processed_events,
        "dead_letters": dead_letters,
        "parked_events": parked,
        "unbalanced": unbalanced,
    }


UNBALANCED_SQL = (
    # Item totals against the sum of its levels.
    "SELECT (SELECT COUNT(*) FROM items i LEFT JOIN (SELECT item_id, SUM(quantity) AS q, SUM(reserved) AS r "
    "FROM stock_levels GROUP BY item_id) s ON s.item_id = i.id "
    "WHERE i.quantity != COALESCE(s.q, 0) OR i.reserved != COALESCE(s.r, 0)) "
    # Units in transit against the open transfers.
    "+ (SELECT COUNT(*) FROM items i LEFT JOIN (SELECT item_id, SUM(quantity) AS q FROM transfers "
    "WHERE state = 'in_transit' GROUP BY item_id) t ON t.item_id = i.id WHERE i.in_transit != COALESCE(t.q, 0)) "
    # Reserved units at each level against its open reservations.
    "+ (SELECT COUNT(*) FROM stock_levels l LEFT JOIN (SELECT item_id, location, SUM(quantity) AS q "
    "FROM reservations WHERE state = 'open' GROUP BY item_id, location) r "
    "ON r.item_id = l.item_id AND r.location = l.location WHERE l.reserved != COALESCE(r.q, 0))"
)


def unbalanced_items(conn: sqlite3.Connection) -> int:
    """Items and levels whose kept figures disagree with the records they sum up."""
    return scalar(conn, UNBALANCED_SQL)


def item_count(data_dir: Path) -> int:
    """Live items in the read model."""
    conn = read_only(data_dir / "inventory.db")
    try:
        return scalar(conn, "SELECT COUNT(*) FROM items WHERE deleted_at IS NULL")
    finally:
        conn.close()
