"""Stock is conserved: random days of every command on one item at three locations.

Each step is decided by the pure domain functions and, when applied, its item becomes the new
state (every transfer and reservation record is held on the item); a rejection leaves the state
as it was. Beside it runs a ledger kept from the commands alone: what was there at first, plus
what adjustments and counts added, minus what they removed, minus what was lost in transit and
what committed reservations sold. After every step the units on hand and in transit add up to
the ledger, and every level, total and record agrees with the others. A small oracle also says
which of the rules each step meets, so a wrong acceptance or rejection fails too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import model, reservations, transfers
from app.domain.model import (
    CHOSEN_REASONS,
    AdjustmentReason,
    Applied,
    Decision,
    Item,
    Reason,
    Rejected,
    StockLevel,
)
from app.domain.rules import moment_text

LOCATIONS = ("MAIN", "S001", "S002")
ITEM_ID = "6f9619ff-8b86-d011-b42d-00c04fc964fe"
START = datetime(2026, 1, 1, tzinfo=UTC)
UNKNOWN = "no-such-record"


def at(step: int) -> str:
    return moment_text(START + timedelta(seconds=step))


@dataclass(frozen=True)
class Step:
    """One command, as drawn: only the fields its kind uses matter."""

    kind: str
    location: str = "MAIN"
    to: str = "S001"
    quantity: int = 1
    reason: AdjustmentReason = AdjustmentReason.CORRECTION
    # A correction removes stock when set; an expiry is published when due when set; a reserve
    # repeats one made with a reference when set; a release is made where plain reservations are.
    flag: bool = False
    reference: str | None = None
    expires_in: int | None = None
    # Which existing record (reservation or transfer) a command names; past the end, an unknown one.
    pick: int = 0
    received: int | None = None


places = st.sampled_from(LOCATIONS)
units = st.integers(1, 12)
picks = st.integers(0, 40)

adjusts = st.builds(
    Step, kind=st.just("adjust"), location=places, reason=st.sampled_from(list(CHOSEN_REASONS)),
    quantity=units, flag=st.booleans(),
)  # fmt: skip
counts = st.builds(Step, kind=st.just("count"), location=places, quantity=st.integers(0, 30))
reserves = st.builds(
    Step, kind=st.just("reserve"), location=places, quantity=units,
    reference=st.sampled_from([None, None, None, "ORDER-1", "ORDER-2"]),
    expires_in=st.sampled_from([None, None, None, 1, 2, 5, 8]), flag=st.booleans(), pick=picks,
)  # fmt: skip
releases = st.builds(
    Step, kind=st.just("release"), location=places, quantity=st.integers(1, 6), flag=st.booleans(), pick=picks
)
commits = st.builds(Step, kind=st.just("commit"), pick=picks)
cancels = st.builds(Step, kind=st.just("cancel"), pick=picks)
expiries = st.builds(Step, kind=st.just("expire"), pick=picks, flag=st.booleans())
moves = st.builds(Step, kind=st.just("transfer"), location=places, to=places, quantity=units)
shipments = st.builds(Step, kind=st.just("ship"), location=places, to=places, quantity=units)
receipts = st.builds(Step, kind=st.just("receive"), pick=picks, received=st.one_of(st.none(), st.integers(0, 12)))
recalls = st.builds(Step, kind=st.just("cancel_transfer"), pick=picks)
# Reserves and shipments twice as often: the commands that name a record need some to name.
steps = st.one_of(
    adjusts, counts, reserves, reserves, releases, commits, cancels, expiries,
    moves, shipments, shipments, receipts, recalls,
)  # fmt: skip


def make_item(stock: list[int]) -> Item:
    levels = {loc: StockLevel(loc, qty, 0, 1, at(0)) for loc, qty in zip(LOCATIONS, stock, strict=True)}
    return Item(ITEM_ID, "SKU-1", "Thing", "", 1, at(0), at(0), None, levels)


def named(records: dict[str, bool], pick: int) -> str:
    """One of the records made so far (by id: whether it is open): mostly an open one, sometimes
    any (so closed ones too), now and then one that does not exist."""
    open_ones = sorted(rid for rid, is_open in records.items() if is_open)
    choices = open_ones if pick % 2 == 0 and open_ones else sorted(records)
    if pick >= 36 or not choices:
        return UNKNOWN
    return choices[pick % len(choices)]


@dataclass
class Outcome:
    """What the oracle expects of a step: the rejection reason (None: applied) and the ledger
    change when it applies."""

    reason: Reason | None
    ledger: int = 0
    changed: bool = True


def decide(item: Item, step: Step, n: int) -> tuple[Decision, Outcome]:
    """The step's decision by the domain, and the oracle's independent expectation of it."""
    now = at(n)
    if step.kind == "adjust":
        way = CHOSEN_REASONS[step.reason] or (-1 if step.flag else 1)
        delta = way * step.quantity
        level = item.level(step.location)
        decision = model.adjust_stock(
            item, location=step.location, delta=delta, expected_version=None, now=now, reason=step.reason
        )
        too_far = level.quantity + delta < level.reserved
        return decision, Outcome(Reason.INSUFFICIENT_STOCK if too_far else None, delta)
    if step.kind == "count":
        level = item.level(step.location)
        decision = model.count_stock(
            item, location=step.location, counted=step.quantity, expected_version=None, now=now
        )
        below = step.quantity < level.reserved
        return decision, Outcome(Reason.COUNT_BELOW_RESERVED if below else None, step.quantity - level.quantity)
    if step.kind == "reserve":
        referenced = {rid: r.open for rid, r in item.reservations.items() if r.reference is not None}
        repeated = item.reservations.get(named(referenced, step.pick)) if step.flag else None
        if repeated is not None:  # the same order again: the same reference, units and place
            step = replace(step, location=repeated.location, quantity=repeated.reserved, reference=repeated.reference)
        rid = f"ref:{step.reference}" if step.reference is not None else f"anon:{n}"
        expires_at = None if step.expires_in is None else at(n + step.expires_in)
        decision = reservations.reserve_stock(
            item, location=step.location, quantity=step.quantity, expected_version=None, now=now,
            reservation_id=rid, reference=step.reference, expires_at=expires_at, submitted_at=now,
        )  # fmt: skip
        existing = item.reservations.get(rid)
        if existing is not None:
            if not existing.open:  # closed: the reference is used up
                return decision, Outcome(Reason.RESERVATION_CLOSED)
            same = existing.location == step.location and existing.reserved == step.quantity
            return decision, Outcome(None, changed=False) if same else Outcome(Reason.INVALID)
        short = step.quantity > item.level(step.location).available
        return decision, Outcome(Reason.INSUFFICIENT_STOCK if short else None)
    if step.kind == "release":
        anonymous = {rid: True for rid, r in item.reservations.items() if r.open and r.anonymous}
        giving_back = item.reservations.get(named(anonymous, step.pick)) if step.flag else None
        if giving_back is not None:  # where plain reservations are, at most what they hold, as a clerk would
            plain = sum(
                r.quantity
                for r in item.reservations.values()
                if r.open and r.anonymous and r.location == giving_back.location
            )
            step = replace(step, location=giving_back.location, quantity=1 + (step.quantity - 1) % max(plain, 1))
        decision = reservations.release_stock(
            item, location=step.location, quantity=step.quantity, expected_version=None, now=now
        )
        releasable = sum(
            r.quantity
            for r in item.reservations.values()
            if r.open and r.reference is None and r.expires_at is None and r.location == step.location
        )
        return decision, Outcome(Reason.OVER_RELEASE if step.quantity > releasable else None)
    if step.kind in ("commit", "cancel", "expire"):
        # An expiry names, mostly, a reservation that has one.
        expiring = step.kind == "expire" and step.pick % 3 != 0
        rid = named({rid: r.open for rid, r in item.reservations.items() if r.expires_at or not expiring}, step.pick)
        held = item.reservations.get(rid)
        if step.kind == "commit":
            decision = reservations.commit_reservation(
                item, reservation_id=rid, expected_version=None, submitted_at=now, now=now
            )
        elif step.kind == "cancel":
            decision = reservations.cancel_reservation(item, reservation_id=rid, expected_version=None, now=now)
        else:
            # The expiry process publishes when due; now and then a copy comes at another time.
            due_at = (held.expires_at or now) if held is not None and step.flag else now
            decision = reservations.expire_reservation(item, reservation_id=rid, due_at=due_at, now=now)
        if held is None:
            return decision, Outcome(Reason.UNKNOWN_RESERVATION)
        if not held.open:
            return decision, Outcome(Reason.RESERVATION_CLOSED)
        if step.kind == "commit":
            late = held.expires_at is not None and now >= held.expires_at
            return decision, Outcome(Reason.RESERVATION_EXPIRED if late else None, -held.quantity)
        if step.kind == "expire":
            due = held.expires_at is not None and due_at >= held.expires_at
            return decision, Outcome(None if due else Reason.NOT_DUE)
        return decision, Outcome(None)
    if step.kind in ("transfer", "ship"):
        decide_move = transfers.transfer_stock if step.kind == "transfer" else transfers.ship_transfer
        decision = decide_move(
            item, transfer_id=f"t:{n}", from_location=step.location, to_location=step.to,
            quantity=step.quantity, expected_version=None, now=now,
        )  # fmt: skip
        if step.location == step.to:
            return decision, Outcome(Reason.SAME_LOCATION)
        short = step.quantity > item.level(step.location).available
        return decision, Outcome(Reason.INSUFFICIENT_STOCK if short else None)
    assert step.kind in ("receive", "cancel_transfer"), step
    tid = named({tid: t.open for tid, t in item.transfers.items()}, step.pick)
    shipment = item.transfers.get(tid)
    if step.kind == "receive":
        decision = transfers.receive_transfer(
            item, transfer_id=tid, received=step.received, expected_version=None, now=now
        )
    else:
        decision = transfers.cancel_transfer(item, transfer_id=tid, expected_version=None, now=now)
    if shipment is None:
        return decision, Outcome(Reason.UNKNOWN_TRANSFER)
    if not shipment.open:
        return decision, Outcome(Reason.TRANSFER_CLOSED)
    if step.kind == "cancel_transfer":
        return decision, Outcome(None)
    arrived = shipment.quantity if step.received is None else step.received
    if arrived > shipment.quantity:
        return decision, Outcome(Reason.OVER_RECEIPT)
    return decision, Outcome(None, -(shipment.quantity - arrived))


def check(item: Item, ledger: int) -> None:
    levels = list(item.levels.values())
    assert set(item.levels) <= set(LOCATIONS)
    assert sum(level.quantity for level in levels) + item.in_transit == ledger
    for level in levels:
        assert 0 <= level.reserved <= level.quantity, level
        held = sum(r.quantity for r in item.reservations.values() if r.open and r.location == level.location)
        assert level.reserved == held, (level, item.reservations)
    assert item.quantity == sum(level.quantity for level in levels)
    assert item.reserved == sum(level.reserved for level in levels)
    assert 0 <= item.reserved <= item.quantity
    assert item.in_transit == sum(t.quantity for t in item.transfers.values() if t.open)
    assert all(r.quantity == 0 for r in item.reservations.values() if r.state is model.ReservationState.RELEASED)
    for transfer in item.transfers.values():
        assert 0 <= transfer.received <= transfer.quantity
        assert transfer.received == 0 or transfer.state is model.TransferState.RECEIVED


def check_movements(before: Item, applied: Applied) -> None:
    """The audit trail says what moved: the movements at each location add up to its change."""
    after = applied.item
    for location in LOCATIONS:
        moved = [m for m in applied.movements if m.location == location]
        assert before.level(location).quantity + sum(m.quantity_delta for m in moved) == after.level(location).quantity
        assert before.level(location).reserved + sum(m.reserved_delta for m in moved) == after.level(location).reserved


@settings(max_examples=200, deadline=None, database=None)
@given(stock=st.lists(st.integers(0, 20), min_size=3, max_size=3), day=st.lists(steps, min_size=10, max_size=80))
def test_stock_is_conserved_through_any_day_of_commands(stock: list[int], day: list[Step]) -> None:
    item = make_item(stock)
    ledger = sum(stock)
    check(item, ledger)
    for n, step in enumerate(day, start=1):
        decision, expected = decide(item, step, n)
        if isinstance(decision, Rejected):
            assert decision.reason is expected.reason, (step, decision)
            check(item, ledger)  # nothing moved
            continue
        assert expected.reason is None, (step, decision, expected)
        assert decision.changed is expected.changed, (step, decision)
        if not decision.changed:  # the same reference reserves once: an idempotent no-op
            assert decision.item == item and decision.movements == () and decision.reservations == ()
            continue
        assert decision.item.version == item.version + 1
        check_movements(item, decision)
        if step.kind == "expire":
            # The expiry applied once; a second copy of it changes nothing.
            rid = decision.reservations[0].id
            again = reservations.expire_reservation(decision.item, reservation_id=rid, due_at=at(n), now=at(n))
            assert isinstance(again, Rejected) and again.reason is Reason.RESERVATION_CLOSED
            later = reservations.expire_reservation(decision.item, reservation_id=rid, due_at=at(n + 99), now=at(n))
            assert isinstance(later, Rejected) and later.reason is Reason.RESERVATION_CLOSED
        item = decision.item
        ledger += expected.ledger
        check(item, ledger)


def test_a_ledger_of_one_of_each_adds_up() -> None:
    """A worked day, so a reader sees the ledger the property keeps."""
    day = [
        Step("adjust", location="MAIN", reason=AdjustmentReason.RECEIVED, quantity=5),  # +5
        Step("adjust", location="S001", reason=AdjustmentReason.SOLD, quantity=2),  # -2
        Step("count", location="S002", quantity=1),  # 4 -> 1: -3
        Step("ship", location="MAIN", to="S002", quantity=6),
        Step("receive", pick=0, received=4),  # -2 lost in transit
        Step("reserve", location="MAIN", quantity=3, reference="ORDER-1"),
        Step("commit", pick=0),  # -3 sold
    ]
    item = make_item([10, 4, 4])
    ledger = 18
    for n, step in enumerate(day, start=1):
        decision, expected = decide(item, step, n)
        assert isinstance(decision, Applied), (step, decision)
        item, ledger = decision.item, ledger + expected.ledger
        check(item, ledger)
    assert ledger == 18 + 5 - 2 - 3 - 2 - 3 == 13
    assert {loc: lv.quantity for loc, lv in item.levels.items()} == {"MAIN": 6, "S001": 2, "S002": 5}
