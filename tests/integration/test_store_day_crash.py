"""A store's day with the listener killed (kill -9) and raced: transfers stay whole, expiries are
neither lost nor doubled, a commit and an expiry of the same reservation never both win, and the
log replays to the database.

Events go straight to the real Kafka broker (as the command service would put them there), so
thousands of them cost seconds; the listener is a real process that is killed and restarted.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.domain import ids
from app.domain.events import COMMAND_TOPICS, Event
from app.domain.rules import moment_text
from app.eventlog.kafka import KafkaEventLog
from app.eventlog.topics import TOPICS
from app.listener.expiry import EXPIRY_ACTOR
from tests.support.app import base_env, kafka_env
from tests.support.events import (
    adjust,
    cancel_transfer,
    commit_reservation,
    create,
    message,
    query,
    receive,
    release,
    reserve,
    ship,
    transfer,
)
from tests.support.processes import ServiceProcess, run_cli
from tests.support.store_day import (
    COMMITTED,
    EXPIRED,
    Replay,
    database_state,
    differences,
    history_lines,
    invariant_problems,
)
from tests.support.waiting import eventually

LOCATIONS = ("MAIN", "S001", "S002")


@dataclass
class Rig:
    env: dict[str, str]
    publisher: KafkaEventLog
    listener: ServiceProcess
    db: Path

    async def publish(self, events: list[Event], chunk: int = 100) -> None:
        for start in range(0, len(events), chunk):
            await self.publisher.publish([message(e) for e in events[start : start + chunk]])

    def outcomes(self) -> int:
        if not self.db.exists():
            return 0
        try:
            return int(query(self.db, "SELECT COUNT(*) FROM command_outcomes")[0][0])
        except Exception:  # the listener is creating the file
            return 0

    async def reach(self, count: int, timeout: float = 120) -> None:
        async def reached() -> bool:
            return self.outcomes() >= count

        await eventually(reached, timeout=timeout, interval=0.05)

    async def caught_up(self, timeout: float = 120) -> None:
        """The listener has consumed everything on the command topics (our events and every copy of
        an expiry it published itself)."""

        async def at_the_end() -> bool:
            ends = await self.publisher.end_offsets(COMMAND_TOPICS)
            done = {
                (t, p): o for t, p, o in query(self.db, "SELECT topic, partition, next_offset FROM consumer_positions")
            }
            return all(done.get(tp, 0) >= end for tp, end in ends.items())

        await eventually(at_the_end, timeout=timeout, interval=0.2)

    def rebuild_equals(self) -> None:
        """With the listener stopped, ``inventory rebuild`` replays the log into a fresh file: it must
        equal the database, and write the same audit trail."""
        self.listener.stop()
        out = run_cli(self.env, "rebuild").stdout
        assert "the rebuilt state equals the current state" in out, out
        rebuilt = max(self.db.parent.glob("rebuild-*.db"), key=lambda path: path.stat().st_mtime)
        assert history_lines(rebuilt) == history_lines(self.db)


@asynccontextmanager
async def rig(kafka_bootstrap: str, data_dir: Path, tmp_path: Path) -> AsyncIterator[Rig]:
    env = base_env(data_dir, **kafka_env(kafka_bootstrap, INVENTORY_LISTENER_BATCH="200"))
    publisher = KafkaEventLog(kafka_bootstrap, client_id="store-day", topic_prefix=env["INVENTORY_KAFKA_TOPIC_PREFIX"])
    await publisher.start()
    await publisher.ensure_topics(TOPICS)
    listener = ServiceProcess("listener", env, tmp_path / "listener.log").start()
    try:
        yield Rig(env, publisher, listener, data_dir / "inventory.db")
    finally:
        listener.stop()
        await publisher.stop()


async def stocked_items(running: Rig, count: int, *, main: int, elsewhere: int = 0) -> tuple[list[str], list[Event]]:
    item_ids = [str(uuid.uuid4()) for _ in range(count)]
    setup: list[Event] = [create(i, f"DAY-{i[:8]}", quantity=main) for i in item_ids]
    await running.publish(setup)
    await running.reach(count)
    if elsewhere:
        more = [adjust(i, elsewhere, location=at) for i in item_ids for at in LOCATIONS[1:]]
        await running.publish(more)
        setup += more
        await running.reach(len(setup))
    return item_ids, setup


# --- a. kill -9 in a stream of transfers ---------------------------------------------------------

TRANSFER_ITEMS = 12
TRANSFER_COMMANDS = 3000


def transfer_stream(item_ids: list[str], count: int, seed: int) -> list[Event]:
    """One-step transfers, shipments later received (in full, short, or too many) or cancelled,
    repeats on closed transfers, and a few plain reserves and releases that take units from what
    is available to move."""
    rng = random.Random(seed)
    shipped: list[tuple[str, str]] = []
    closed: list[tuple[str, str]] = []
    events: list[Event] = []
    while len(events) < count:
        item = rng.choice(item_ids)
        source, target = rng.sample(LOCATIONS, 2)
        roll = rng.random()
        if roll < 0.3:
            events.append(transfer(item, rng.randint(1, 15), source, target))
        elif roll < 0.55:
            shipment = ship(item, rng.randint(1, 15), source, target)
            events.append(shipment)
            shipped.append((item, ids.transfer_id(shipment.command_id)))
        elif roll < 0.8 and shipped:
            item, transfer_id = shipped.pop(rng.randrange(len(shipped)))
            events.append(receive(item, transfer_id, rng.choice([None, None, rng.randint(0, 16)])))
            closed.append((item, transfer_id))
        elif roll < 0.9 and shipped:
            item, transfer_id = shipped.pop(rng.randrange(len(shipped)))
            events.append(cancel_transfer(item, transfer_id))
            closed.append((item, transfer_id))
        elif roll < 0.93 and closed:
            item, transfer_id = rng.choice(closed)
            events.append(receive(item, transfer_id) if rng.random() < 0.5 else cancel_transfer(item, transfer_id))
        elif roll < 0.97:
            events.append(reserve(item, rng.randint(1, 6), location=source))
        else:
            events.append(release(item, rng.randint(1, 6), location=source))
    return events


@pytest.mark.slow
@pytest.mark.kafka
async def test_sigkill_in_a_stream_of_transfers_leaves_every_transfer_whole(
    kafka_bootstrap: str, data_dir: Path, tmp_path: Path
) -> None:
    async with rig(kafka_bootstrap, data_dir, tmp_path) as running:
        item_ids, setup = await stocked_items(running, TRANSFER_ITEMS, main=100, elsewhere=40)
        stream = transfer_stream(item_ids, TRANSFER_COMMANDS, seed=20261203)
        killed_at: list[int] = []

        async def kill_mid_stream() -> None:
            await running.reach(len(setup) + TRANSFER_COMMANDS // 4)
            running.listener.kill()
            killed_at.append(running.outcomes())
            await asyncio.sleep(0.5)
            running.listener.start(wait=False)

        killer = asyncio.create_task(kill_mid_stream())
        await running.publish(stream)
        await killer
        await running.reach(len(setup) + TRANSFER_COMMANDS, timeout=180)
        await running.caught_up()
        print(f"killed with {killed_at[0]} of {len(setup) + TRANSFER_COMMANDS} outcomes written")

        expected = Replay().apply_all([*setup, *stream])
        # The stream meets every case: transfers left in transit, received (some short), cancelled,
        # and each rejection a transfer can have.
        states = Counter(state for *_, state, _ in expected.state()["transfers"].values())
        assert states["in_transit"] and states["received"] and states["cancelled"], states
        reasons = Counter(s for s in expected.statuses.values() if s.startswith("rejected"))
        for reason in ("insufficient_stock", "transfer_closed", "over_receipt"):
            assert reasons[f"rejected:{reason}"], reasons

        # The database is what the domain says, event by event, every transfer whole...
        assert differences(database_state(running.db), expected.state()) == []
        assert invariant_problems(running.db) == []
        # ...and every event applied exactly once.
        all_events = len(setup) + TRANSFER_COMMANDS
        assert query(running.db, "SELECT COUNT(*) FROM processed_events") == [(all_events,)]
        assert query(running.db, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM history") == [
            (expected.history_rows, expected.applied_events)
        ]


# --- c. expiries across a killed listener --------------------------------------------------------

EXPIRY_ITEMS = 8
EXPIRING = 240


@pytest.mark.slow
@pytest.mark.kafka
async def test_expiries_are_neither_lost_nor_doubled_when_the_listener_is_killed(
    kafka_bootstrap: str, data_dir: Path, tmp_path: Path
) -> None:
    async with rig(kafka_bootstrap, data_dir, tmp_path) as running:
        item_ids, setup = await stocked_items(running, EXPIRY_ITEMS, main=100)
        # Due one after another over about nine seconds, from three seconds from now.
        start = datetime.now(UTC) + timedelta(seconds=3)
        reserves = [
            reserve(
                item_ids[n % EXPIRY_ITEMS], 1 + n % 3, reference=f"CART-{n}",
                expires_at=moment_text(start + timedelta(seconds=(n * 37 % EXPIRING) * 9 / EXPIRING)),
            )
            for n in range(EXPIRING)
        ]  # fmt: skip
        await running.publish(reserves)
        await running.reach(len(setup) + EXPIRING)
        held = {ids.reservation_id(e.item_id, e.command_id, f"CART-{n}"): e for n, e in enumerate(reserves)}
        assert query(running.db, "SELECT COUNT(*) FROM reservations WHERE state = 'open'") == [(EXPIRING,)]

        def expired() -> int:
            return int(query(running.db, "SELECT COUNT(*) FROM history WHERE actor = ?", (EXPIRY_ACTOR,))[0][0])

        async def some_expired() -> bool:
            return expired() > 0

        await eventually(some_expired, timeout=60, interval=0.01)
        running.listener.kill()  # while the others come due
        at_kill = expired()
        await asyncio.sleep(1.0)
        running.listener.start()

        async def all_expired() -> bool:
            return expired() >= EXPIRING

        await eventually(all_expired, timeout=120, interval=0.2)
        await running.caught_up()
        print(f"listener killed with {at_kill} of {EXPIRING} reservations expired")

        # Every reservation expired, once: one history line by the expiry process each...
        assert query(running.db, "SELECT state, COUNT(*) FROM reservations GROUP BY state") == [("expired", EXPIRING)]
        lines = query(
            running.db, "SELECT reference, COUNT(*) FROM history WHERE actor = ? GROUP BY reference", (EXPIRY_ACTOR,)
        )
        assert dict(lines) == dict.fromkeys(held, 1)
        # ...one applied outcome per expiry command id, and no other expiry outcome...
        expiry_outcomes = {
            cid: (status, reason)
            for cid, status, reason in query(
                running.db,
                "SELECT command_id, status, reason FROM command_outcomes WHERE event_type = ?",
                (EXPIRED,),
            )
        }
        assert expiry_outcomes == {ids.expiry_ids(r)[1]: ("applied", None) for r in held}
        expiry_events = {ids.expiry_ids(r)[0] for r in held}
        processed = {row[0] for row in query(running.db, "SELECT event_id FROM processed_events")}
        assert expiry_events <= processed
        # ...and every unit back: nothing reserved, nothing lost.
        assert query(running.db, "SELECT DISTINCT quantity, reserved FROM stock_levels") == [(100, 0)]
        assert query(running.db, "SELECT DISTINCT quantity, reserved FROM items") == [(100, 0)]
        assert invariant_problems(running.db) == []
        running.rebuild_equals()


# --- d. a commit in flight when its reservation expires ------------------------------------------

RACE_ITEMS = 10
RACES = 150


@pytest.mark.slow
@pytest.mark.kafka
async def test_a_commit_racing_its_expiry_ends_as_exactly_one_of_them(
    kafka_bootstrap: str, data_dir: Path, tmp_path: Path
) -> None:
    async with rig(kafka_bootstrap, data_dir, tmp_path) as running:
        item_ids, setup = await stocked_items(running, RACE_ITEMS, main=100)
        start = datetime.now(UTC) + timedelta(seconds=4)
        due = {n: start + timedelta(seconds=(n % 10) * 0.15) for n in range(RACES)}
        reserves = [
            reserve(item_ids[n % RACE_ITEMS], 1 + n % 4, reference=f"RACE-{n}", expires_at=moment_text(due[n]))
            for n in range(RACES)
        ]
        await running.publish(reserves)
        await running.reach(len(setup) + RACES)
        reservation_of = {n: ids.reservation_id(e.item_id, e.command_id, f"RACE-{n}") for n, e in enumerate(reserves)}

        # Each commit goes to the log within 0.4 s either side of its reservation's expiry, while the
        # listener's expiry process publishes the expiries as they come due.
        schedule = sorted(
            (due[n] + timedelta(seconds=((n * 7) % 11 - 5) * 0.08), n) for n in range(RACES)
        )  # fmt: skip
        commits: dict[int, Event] = {}
        for when, n in schedule:
            pause = (when - datetime.now(UTC)).total_seconds()
            if pause > 0:
                await asyncio.sleep(pause)
            commits[n] = commit_reservation(reserves[n].item_id, reservation_of[n])
            await running.publisher.publish([message(commits[n])])

        def closed() -> int:
            return int(query(running.db, "SELECT COUNT(*) FROM reservations WHERE state != 'open'")[0][0])

        async def settled() -> bool:
            return running.outcomes() >= len(setup) + 2 * RACES and closed() >= RACES

        await eventually(settled, timeout=120, interval=0.2)
        await running.caught_up()

        outcomes = {
            cid: (status, reason)
            for cid, status, reason in query(running.db, "SELECT command_id, status, reason FROM command_outcomes")
        }
        states = dict(query(running.db, "SELECT id, state FROM reservations"))
        closing: dict[str, list[str]] = {}
        for reference, event_type in query(
            running.db, "SELECT reference, event_type FROM history WHERE event_type IN (?, ?)", (COMMITTED, EXPIRED)
        ):
            closing.setdefault(reference, []).append(event_type)
        sold: Counter[str] = Counter()
        ends: Counter[str] = Counter()
        for n in range(RACES):
            rid, commit = reservation_of[n], commits[n]
            expires_at = moment_text(due[n])
            commit_outcome = outcomes[commit.command_id]
            expiry_outcome = outcomes.get(ids.expiry_ids(rid)[1])
            state = states[rid]
            ends[f"{state} (commit {commit_outcome[1] or 'applied'})"] += 1
            assert state in ("committed", "expired"), (n, state)
            # Exactly one of the two changed the stock.
            assert closing.get(rid) == [COMMITTED if state == "committed" else EXPIRED], (n, closing.get(rid))
            if state == "committed":
                assert commit_outcome == ("applied", None)
                assert commit.occurred_at < expires_at, (n, commit.occurred_at, expires_at)
                assert expiry_outcome in (None, ("rejected", "reservation_closed")), (n, expiry_outcome)
                sold[reserves[n].item_id] += 1 + n % 4
            else:
                assert expiry_outcome == ("applied", None), (n, expiry_outcome)
                assert commit_outcome in (("rejected", "reservation_expired"), ("rejected", "reservation_closed"))
                if commit_outcome[1] == "reservation_expired":
                    assert commit.occurred_at >= expires_at, (n, commit.occurred_at, expires_at)
        print("how the races ended:", dict(ends))

        # On hand dropped by exactly what was sold; nothing is left reserved.
        levels = {
            item_id: (q, r)
            for item_id, q, r in query(running.db, "SELECT item_id, quantity, reserved FROM stock_levels")
        }
        assert levels == {item_id: (100 - sold[item_id], 0) for item_id in item_ids}
        assert invariant_problems(running.db) == []
        running.rebuild_equals()
