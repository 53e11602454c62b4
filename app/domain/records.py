"""What the read side carries, each shape declared once: the item as every reader sees it, the
change records of the outbox and the change feed, how a command ended, and the history rows.

Pure: msgspec Structs and the encoder and decoders for them, built once. The JSON they make is
the wire format of ``inventory.changes``, of the cache and of the query API, so field order and
names here are the contract: change a field and every reader and stored payload changes too.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class LevelView(msgspec.Struct, frozen=True):
    location: str
    quantity: int
    reserved: int
    available: int
    version: int
    updated_at: str


class ItemSummary(msgspec.Struct, frozen=True):
    """An item without its levels: what it is, its version and its chain totals (kept on the item
    row, so reading them costs the same at 5 stores and at 500)."""

    id: str
    sku: str
    name: str
    description: str
    quantity: int
    reserved: int
    available: int
    version: int
    created_at: str
    updated_at: str
    low_stock_threshold: int | None
    # Shipped and not yet received or cancelled (0 in records written before transfers existed).
    in_transit: int = 0


class ItemView(ItemSummary, frozen=True, kw_only=True):
    """An item with levels: every level (an item page, a full read), the levels asked for
    (``location=``), or the one a store sees with its totals narrowed to it (``at_location``)."""

    locations: list[LevelView]


class StockView(msgspec.Struct, frozen=True):
    """The stock part of an item, for the stock endpoints."""

    id: str
    sku: str
    quantity: int
    reserved: int
    available: int
    version: int
    updated_at: str
    locations: list[LevelView]


class TransferView(msgspec.Struct, frozen=True):
    """A transfer as lists and pages show it."""

    id: str
    item_id: str
    from_location: str
    to_location: str
    quantity: int
    received: int
    state: str
    shipped_at: str
    closed_at: str | None
    note: str | None


class ReservationView(msgspec.Struct, frozen=True):
    """A reservation as lists and pages show it: ``quantity`` is what it holds now."""

    id: str
    item_id: str
    location: str
    quantity: int
    reserved: int
    state: str
    reference: str | None
    expires_at: str | None
    created_at: str
    closed_at: str | None


class StockAlert(msgspec.Struct, frozen=True):
    """A level crossed a line (app/domain/alerts.py): ``low_stock``, ``out_of_stock`` or
    ``back_in_stock``, decided once by the listener in the transaction that made the change.
    ``id`` is the alert's row in the database, unique and rising; ``command_id`` the change's."""

    id: int
    item_id: str
    sku: str
    location: str
    kind: str
    available: int
    threshold: int
    command_id: str
    at: str


class HistoryRow(msgspec.Struct, frozen=True, array_like=True):
    """One history row exactly as the listener stored it (every column, its id too): what a
    replica (app/replica/) writes. Travels as a JSON array to stay small."""

    id: int
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
    applied_at: str
    reason: str | None
    reference: str | None
    expected: int | None


# --- change records ---------------------------------------------------------------------------
# Stored in the outbox without ``seq`` (the commit sequence is the row's key); published and
# replayed with it in front (``app/jsontext.py`` change_record). Decoding either gives the same
# Struct, with ``seq`` 0 for a stored payload. Every other field is required, so omit_defaults
# drops nothing but an unknown ``seq``.


class ItemChange(msgspec.Struct, frozen=True, tag="item", tag_field="kind", omit_defaults=True):
    """What one committed batch did to an item: its summary after the batch (None once it is
    deleted) and only the levels the batch changed. Its size does not depend on how many stores
    the item is stocked in."""

    kind: ClassVar[str] = "item"

    item_id: str
    version: int
    created: bool
    deleted: bool
    item: ItemSummary | None
    levels: list[LevelView]
    seq: int = 0
    # The transfers and reservations the batch made or changed (never the others).
    transfers: list[TransferView] = []
    reservations: list[ReservationView] = []
    # The stock alerts the batch raised at the levels it changed (app/domain/alerts.py).
    alerts: list[StockAlert] = []
    # True when the batch edited what the item is (name, description, threshold): an
    # "item changed" for webhooks, apart from stock moving.
    edited: bool = False
    # --- for replicas only (app/replica/), dropped by ``for_screens`` before any screen sees it:
    # with these a query or command node on another machine writes exactly the rows the
    # listener wrote. The history rows the batch added for this item; the item row as stored
    # once it is deleted (``item`` is None then) and when; the alert state of each changed level
    # (location -> ok, low or out); the order number (``reservations.seq``) of each reservation
    # the batch made or changed. A deleted item's changed levels travel in ``levels`` for them
    # too (a screen gets none).
    history: list[HistoryRow] = []
    tombstone: ItemSummary | None = None
    deleted_at: str | None = None
    level_alerts: dict[str, str] = {}
    reservation_seqs: dict[str, int] = {}

    def with_levels(self, locations: frozenset[str]) -> ItemChange:
        """The same change as a subscriber to these locations sees it."""
        return msgspec.structs.replace(
            self,
            levels=[lv for lv in self.levels if lv.location in locations],
            transfers=[t for t in self.transfers if t.from_location in locations or t.to_location in locations],
            reservations=[r for r in self.reservations if r.location in locations],
            alerts=[a for a in self.alerts if a.location in locations],
        )


class OutcomeChange(msgspec.Struct, frozen=True, tag="outcome", tag_field="kind", omit_defaults=True):
    """How one command ended, as the listener committed it."""

    kind: ClassVar[str] = "outcome"

    command_id: str
    item_id: str
    event_type: str
    location: str | None
    status: str
    reason: str | None
    message: str | None
    version: int | None
    submitted_at: str
    processed_at: str
    seq: int = 0
    # Who sent the command: for replicas only (``for_screens`` drops it).
    actor: str = ""


Change = ItemChange | OutcomeChange


def for_screens(change: Change) -> Change:
    """The change without what only a replica needs: what a live stream, a page or a client
    waiting for an outcome is sent. The same object when there was nothing to drop."""
    if isinstance(change, OutcomeChange):
        return msgspec.structs.replace(change, actor="") if change.actor else change
    deleted_levels = change.deleted and bool(change.levels)
    if (
        change.history
        or change.tombstone
        or change.deleted_at
        or change.level_alerts
        or change.reservation_seqs
        or deleted_levels
    ):
        return msgspec.structs.replace(
            change,
            history=[],
            tombstone=None,
            deleted_at=None,
            level_alerts={},
            reservation_seqs={},
            levels=[] if change.deleted else change.levels,
        )
    return change


class ChangesPage(msgspec.Struct, frozen=True):
    """What the listener serves a node from its outbox (app/listener/internal_controller.py):
    the records after a sequence as (seq, kind, item_id, stored payload), oldest first;
    ``oldest`` is the oldest record it keeps, ``last`` the newest it committed."""

    oldest: int
    last: int
    changes: list[tuple[int, str, str, str]]


class OutcomeView(msgspec.Struct, frozen=True):
    """A command's outcome with the item's state after it: what a client waiting for it gets.
    ``item`` is None for a rejection, a delete, or when the item could not be read."""

    outcome: OutcomeChange
    item: ItemView | None = None


class CommandStatusView(msgspec.Struct, frozen=True, omit_defaults=True):
    """``GET /api/v1/commands/{id}``: pending, or how the command ended."""

    command_id: str
    status: str
    item_id: str
    submitted_at: str
    reason: str | None = None
    version: int | None = None
    processed_at: str | None = None


class HistoryEntry(msgspec.Struct, frozen=True):
    """One applied change of an item, as its history lists it."""

    id: int
    type: str
    location: str | None
    quantity_delta: int
    reserved_delta: int
    quantity_after: int | None
    reserved_after: int | None
    version: int
    actor: str
    command_id: str
    note: str | None
    occurred_at: str
    applied_at: str
    # Why on-hand stock moved (adjustments, counts, short receipts), the transfer or reservation
    # the change belongs to, and what was expected (a count: on hand before; a receipt: shipped).
    reason: str | None = None
    reference: str | None = None
    expected: int | None = None


# --- codecs, built once -----------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
decode_change = msgspec.json.Decoder(Change).decode
decode_item = msgspec.json.Decoder(ItemView).decode
decode_summary = msgspec.json.Decoder(ItemSummary).decode
decode_level = msgspec.json.Decoder(LevelView).decode
decode_outcome = msgspec.json.Decoder(OutcomeChange).decode


def encode(record: msgspec.Struct) -> bytes:
    return _encoder.encode(record)


def encode_text(record: msgspec.Struct) -> str:
    return _encoder.encode(record).decode()
