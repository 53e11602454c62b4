"""Turn a batch of events into the writes of one transaction.

Pure: it receives what was loaded from the database and returns what to write. The store
writes the plan with version guards; the consumer loop decides about retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.domain.alerts import DEFAULT_THRESHOLD, AlertKind, initial_state, next_alert
from app.domain.catalogue import BY_EVENT_TYPE, DecisionContext
from app.domain.events import Event, EventType
from app.domain.model import (
    Applied,
    Decision,
    Item,
    Movement,
    Reason,
    Rejected,
    Reservation,
    StockLevel,
    Transfer,
    evolve,
)
from app.domain.records import HistoryRow as StoredHistoryRow
from app.domain.records import ItemChange, OutcomeChange, ReservationView, StockAlert, TransferView
from app.domain.views import level_view, reservation_view, summary_view, transfer_view
from app.eventlog.base import TopicPartition


@dataclass(frozen=True)
class ParkedEvent:
    """A stock event waiting for its item's create."""

    id: int | None
    event: Event
    value: bytes
    deadline: float


@dataclass
class Loaded:
    """What the planner needs to know about the database before a batch."""

    items: dict[str, Item] = field(default_factory=dict)
    sku_owners: dict[str, str] = field(default_factory=dict)
    parked: dict[str, list[ParkedEvent]] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryRow:
    item_id: str
    event_type: str
    location: str | None
    quantity_delta: int
    reserved_delta: int
    quantity_after: int | None
    reserved_after: int | None
    item_version: int
    actor: str
    command_id: str
    event_id: str
    note: str | None
    occurred_at: str
    reason: str | None = None
    reference: str | None = None
    expected: int | None = None

    def stored(self, row_id: int, applied_at: str) -> StoredHistoryRow:
        """The row as the store wrote it, with its number: what a replica writes."""
        return StoredHistoryRow(
            id=row_id, item_id=self.item_id, event_type=self.event_type, location=self.location,
            quantity_delta=self.quantity_delta, reserved_delta=self.reserved_delta,
            quantity_after=self.quantity_after, reserved_after=self.reserved_after,
            item_version=self.item_version, actor=self.actor, command_id=self.command_id,
            event_id=self.event_id, note=self.note, occurred_at=self.occurred_at, applied_at=applied_at,
            reason=self.reason, reference=self.reference, expected=self.expected,
        )  # fmt: skip


@dataclass(frozen=True)
class AlertRow:
    """A stock alert the batch raised; the store numbers it (its row id) and dates it."""

    item_id: str
    sku: str
    location: str
    kind: AlertKind
    available: int
    threshold: int
    command_id: str

    def record(self, alert_id: int, at: str) -> StockAlert:
        return StockAlert(
            id=alert_id,
            item_id=self.item_id,
            sku=self.sku,
            location=self.location,
            kind=self.kind.value,
            available=self.available,
            threshold=self.threshold,
            command_id=self.command_id,
            at=at,
        )


@dataclass(frozen=True)
class Outcome:
    command_id: str
    item_id: str
    event_type: str
    location: str | None
    status: str
    reason: str | None
    message: str | None
    version: int | None
    actor: str
    submitted_at: str

    def change(self, processed_at: str) -> OutcomeChange:
        return OutcomeChange(
            command_id=self.command_id,
            item_id=self.item_id,
            event_type=self.event_type,
            location=self.location,
            status=self.status,
            reason=self.reason,
            message=self.message,
            version=self.version,
            submitted_at=self.submitted_at,
            processed_at=processed_at,
            actor=self.actor,
        )


@dataclass
class Plan:
    """Everything one transaction writes."""

    new_items: dict[str, Item] = field(default_factory=dict)
    changed_items: dict[str, tuple[Item, int]] = field(default_factory=dict)  # item, version it had
    levels: dict[tuple[str, str], tuple[StockLevel, int | None]] = field(default_factory=dict)  # level, base
    transfers: dict[str, Transfer] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    history: list[HistoryRow] = field(default_factory=list)
    alerts: list[AlertRow] = field(default_factory=list)
    # Items the batch edited (name, description, threshold): ItemChange.edited.
    edited: set[str] = field(default_factory=set)
    outcomes: list[Outcome] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    parked: list[ParkedEvent] = field(default_factory=list)
    unparked: list[int] = field(default_factory=list)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    # The items as loaded before the batch: the store writes only the stock columns of an item
    # whose other columns the batch left alone (most changes move stock only).
    loaded_items: dict[str, Item] = field(default_factory=dict)

    @property
    def touched_items(self) -> list[Item]:
        # Changed before new, the order the store writes them in: a delete frees its SKU before
        # an item created in the same batch takes it, in a replica too (records apply in order).
        return [*(item for item, _ in self.changed_items.values()), *self.new_items.values()]

    def item_changes(
        self,
        alerts: Sequence[StockAlert] = (),
        *,
        first_history_id: int = 0,
        applied_at: str = "",
        reservation_seqs: dict[str, int] | None = None,
    ) -> list[ItemChange]:
        """One change record per item touched: its summary after this batch and the levels the
        batch changed (never the others, however many stores the item is in), with the alerts
        it raised (``alerts``: this plan's, as the store numbered them).

        Each record also carries what a replica (app/replica/) needs to write the same rows: the
        history rows numbered from ``first_history_id`` in plan order, as stored at
        ``applied_at``; the order number of each reservation (``reservation_seqs``); the alert
        state of each changed level; a deleted item's row."""
        raised: dict[str, list[StockAlert]] = {}
        for alert in alerts:
            raised.setdefault(alert.item_id, []).append(alert)
        changed: dict[str, list[StockLevel]] = {}
        for (item_id, _), (level, _) in sorted(self.levels.items()):
            changed.setdefault(item_id, []).append(level)
        transfers: dict[str, list[TransferView]] = {}
        for transfer in self.transfers.values():
            transfers.setdefault(transfer.item_id, []).append(transfer_view(transfer))
        seqs = reservation_seqs or {}
        reservations: dict[str, list[ReservationView]] = {}
        # Grouped once here: looking them up per item would cost items x reservations.
        item_seqs: dict[str, dict[str, int]] = {}
        for reservation in self.reservations.values():
            reservations.setdefault(reservation.item_id, []).append(reservation_view(reservation))
            if reservation.id in seqs:
                item_seqs.setdefault(reservation.item_id, {})[reservation.id] = seqs[reservation.id]
        history: dict[str, list[StoredHistoryRow]] = {}
        for offset, row in enumerate(self.history):
            history.setdefault(row.item_id, []).append(row.stored(first_history_id + offset, applied_at))
        return [
            ItemChange(
                item_id=item.id,
                version=item.version,
                created=item.id in self.new_items,
                deleted=item.deleted,
                item=None if item.deleted else summary_view(item),
                # A deleted item's levels are for replicas only (``for_screens`` drops them).
                levels=[level_view(level) for level in changed.get(item.id, [])],
                transfers=transfers.get(item.id, []),
                reservations=reservations.get(item.id, []),
                alerts=raised.get(item.id, []),
                edited=item.id in self.edited,
                history=history.get(item.id, []),
                tombstone=summary_view(item) if item.deleted else None,
                deleted_at=item.deleted_at,
                level_alerts={level.location: (level.alert or "ok") for level in changed.get(item.id, [])},
                reservation_seqs=item_seqs.get(item.id, {}),
            )
            for item in self.touched_items
        ]


def _record_location(event: Event, item: Item) -> str | None:
    """Where a command that names a transfer or reservation was made (its event carries only the
    default location): the reservation's store, a receipt's destination, a cancel's origin. Its
    outcome then reaches the pages of that store."""
    record = BY_EVENT_TYPE[event.event_type].record
    if record is None:
        return None
    record_id = record.id_of(event)
    if record.kind == "reservation":
        reservation = item.reservations.get(record_id)
        return reservation.location if reservation is not None else None
    transfer = item.transfers.get(record_id)
    if transfer is None:
        return None
    return transfer.to_location if event.event_type is EventType.TRANSFER_RECEIVED else transfer.from_location


class Planner:
    def __init__(
        self,
        loaded: Loaded,
        *,
        now: str,
        now_epoch: float,
        orphan_wait: float,
        default_threshold: int = DEFAULT_THRESHOLD,
    ) -> None:
        self._items = dict(loaded.items)
        self._loaded_versions = {item_id: item.version for item_id, item in loaded.items.items()}
        self._level_bases: dict[tuple[str, str], int | None] = {
            (item.id, level.location): level.version for item in loaded.items.values() for level in item.levels.values()
        }
        self._sku_owners = dict(loaded.sku_owners)
        self._parked = {item_id: list(events) for item_id, events in loaded.parked.items()}
        self._now = now
        self._now_epoch = now_epoch
        self._orphan_wait = orphan_wait
        self._default_threshold = default_threshold
        self.plan = Plan(loaded_items=loaded.items)

    # --- entry points -------------------------------------------------------------------

    def apply(self, event: Event, value: bytes) -> None:
        """Apply one freshly consumed event (already known not to be a duplicate)."""
        self.plan.processed.append(event.event_id)
        if event.topic != EventType.ITEM_CREATED.topic and self._must_wait(event.item_id):
            self._park(event, value)
            return
        self._decide_and_record(event)

    def expire(self, parked: ParkedEvent) -> None:
        """A parked event whose item never came: it ends as unknown_item."""
        if parked.id is not None:
            self.plan.unparked.append(parked.id)
        self._reject(parked.event, Rejected(Reason.UNKNOWN_ITEM, "item does not exist (its create never arrived)"))

    # --- internals ----------------------------------------------------------------------

    def _must_wait(self, item_id: str) -> bool:
        if self._parked.get(item_id):
            return True  # keep per-item order behind events already waiting
        return item_id not in self._items

    def _park(self, event: Event, value: bytes) -> None:
        parked = ParkedEvent(id=None, event=event, value=value, deadline=self._now_epoch + self._orphan_wait)
        self._parked.setdefault(event.item_id, []).append(parked)
        self.plan.parked.append(parked)

    def _drain_parked(self, item_id: str) -> None:
        for parked in self._parked.pop(item_id, []):
            if parked.id is not None:
                self.plan.unparked.append(parked.id)
            else:
                self.plan.parked.remove(parked)
            self._decide_and_record(parked.event)

    def _decide_and_record(self, event: Event) -> None:
        decision = self._decide(event)
        if isinstance(decision, Rejected):
            self._reject(event, decision)
        else:
            self._record(event, decision)
        if event.event_type is EventType.ITEM_CREATED:
            # Stock events that waited for this create can go now: applied after it, or
            # rejected with it.
            self._drain_parked(event.item_id)

    def _decide(self, event: Event) -> Decision:
        spec = BY_EVENT_TYPE[event.event_type]
        context = DecisionContext(now=self._now, sku_owner=self._sku_owners.get)
        return spec.decide(self._items.get(event.item_id), event, context)

    def _record(self, event: Event, applied: Applied) -> None:
        item = applied.item
        if not applied.changed:  # an idempotent repeat (the same reservation reference)
            self._outcome(event, "applied", None, None, item.version)
            return
        if applied.movements:
            item = self._decide_alerts(event, item, {movement.location for movement in applied.movements})
        elif event.event_type is EventType.ITEM_UPDATED:
            self.plan.edited.add(item.id)
        before = self._items.get(item.id)
        self._items[item.id] = item
        if before is not None and not before.deleted:
            self._sku_owners.pop(before.sku, None)
        if not item.deleted:
            self._sku_owners[item.sku] = item.id
        if item.id in self._loaded_versions:
            self.plan.changed_items[item.id] = (item, self._loaded_versions[item.id])
        else:
            self.plan.new_items[item.id] = item
        for transfer in applied.transfers:
            self.plan.transfers[transfer.id] = transfer
        for reservation in applied.reservations:
            self.plan.reservations[reservation.id] = reservation
        note = BY_EVENT_TYPE[event.event_type].note(event)
        for movement in applied.movements:
            level = item.levels[movement.location]
            key = (item.id, level.location)
            self.plan.levels[key] = (level, self._level_bases.get(key))
            self._history(event, item, movement.location, movement, level, note=note)
        if not applied.movements:
            self._history(event, item, None, Movement(""), None, note=note)
        location = applied.movements[0].location if applied.movements else event.location
        self._outcome(event, "applied", None, None, item.version, location=location)

    def _decide_alerts(self, event: Event, item: Item, locations: set[str]) -> Item:
        """The item with the alert state of each level the change moved decided again, once, here
        (app/domain/alerts.py); the alerts it raised go into the plan. A level not stored yet
        starts from what it is now, without an alert. A threshold edit moves no level: each level
        meets the new threshold at its next change."""
        threshold = item.low_stock_threshold if item.low_stock_threshold is not None else self._default_threshold
        decided: list[StockLevel] = []
        for location in sorted(locations):
            level = item.levels[location]
            if level.alert is None:
                state, kind = initial_state(level.available, threshold), None
            else:
                decision = next_alert(level.alert, level.available, threshold)
                state, kind = decision.state, decision.alert
            if state is not level.alert:
                decided.append(evolve(level, alert=state))
            if kind is not None:
                self.plan.alerts.append(
                    AlertRow(item.id, item.sku, location, kind, level.available, threshold, event.command_id)
                )
        if not decided:
            return item
        return evolve(item, levels={**item.levels, **{level.location: level for level in decided}})

    def _history(
        self,
        event: Event,
        item: Item,
        location: str | None,
        movement: Movement,
        level: StockLevel | None,
        *,
        note: str | None = None,
    ) -> None:
        self.plan.history.append(
            HistoryRow(
                item_id=item.id,
                event_type=event.event_type.value,
                location=location,
                quantity_delta=movement.quantity_delta,
                reserved_delta=movement.reserved_delta,
                quantity_after=level.quantity if level else None,
                reserved_after=level.reserved if level else None,
                item_version=item.version,
                actor=event.actor,
                command_id=event.command_id,
                event_id=event.event_id,
                note=movement.note if movement.note is not None else note,
                occurred_at=event.occurred_at,
                reason=movement.reason.value if movement.reason else None,
                reference=movement.reference,
                expected=movement.expected,
            )
        )

    def _reject(self, event: Event, rejected: Rejected) -> None:
        item = self._items.get(event.item_id)
        version = item.version if item is not None else None
        location = _record_location(event, item) if item is not None else None
        self._outcome(event, "rejected", rejected.reason.value, rejected.message, version, location=location)

    def _outcome(
        self,
        event: Event,
        status: str,
        reason: str | None,
        message: str | None,
        version: int | None,
        *,
        location: str | None = None,
    ) -> None:
        self.plan.outcomes.append(
            Outcome(
                command_id=event.command_id,
                item_id=event.item_id,
                event_type=event.event_type.value,
                location=location or event.location,
                status=status,
                reason=reason,
                message=message,
                version=version,
                actor=event.actor,
                submitted_at=event.occurred_at,
            )
        )
