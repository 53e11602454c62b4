"""The inventory database: the source of truth, written only by the listener."""

from __future__ import annotations

import time
import uuid

import aiosqlite

from app.domain.alerts import DEFAULT_THRESHOLD

SCHEMA_VERSION = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    low_stock_threshold INTEGER,
    -- Chain totals over every level, moved with each change (version 3).
    quantity INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0,
    -- Units shipped and not yet received or cancelled (version 4).
    in_transit INTEGER NOT NULL DEFAULT 0
);
-- A deleted item keeps its row (history, late events) but frees its SKU.
CREATE UNIQUE INDEX IF NOT EXISTS items_live_sku ON items (sku) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS items_live_name ON items (name COLLATE NOCASE) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS items_updated ON items (updated_at);

CREATE TABLE IF NOT EXISTS stock_levels (
    item_id TEXT NOT NULL REFERENCES items (id),
    location TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    version INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    -- Version 5: the level's stock alert state (app/domain/alerts.py), decided by the listener.
    alert TEXT NOT NULL DEFAULT 'ok' CHECK (alert IN ('ok', 'low', 'out')),
    PRIMARY KEY (item_id, location),
    -- The invariant of app/domain/model.py, enforced by the database as a last line of defence.
    CHECK (reserved >= 0 AND reserved <= quantity)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stock_levels_location ON stock_levels (location, item_id);
-- A store's list sorted by what it has available walks this store's part of the index only.
CREATE INDEX IF NOT EXISTS stock_levels_location_available ON stock_levels (location, quantity - reserved);
-- Low stock across the chain (app/reader.py low_levels): an item's levels by what they have
-- available, with the columns that make counting them an index-only walk.
CREATE INDEX IF NOT EXISTS stock_levels_item_available
    ON stock_levels (item_id, quantity - reserved, quantity, reserved);

CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    location TEXT,
    quantity_delta INTEGER NOT NULL DEFAULT 0,
    reserved_delta INTEGER NOT NULL DEFAULT 0,
    quantity_after INTEGER,
    reserved_after INTEGER,
    item_version INTEGER NOT NULL,
    actor TEXT NOT NULL,
    command_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    note TEXT,
    occurred_at TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    -- Version 4: why on-hand stock moved (app/domain/model.py AdjustmentReason), the transfer or
    -- reservation the change belongs to, and what was expected (count: on hand before; receipt: shipped).
    reason TEXT,
    reference TEXT,
    expected INTEGER
);
CREATE INDEX IF NOT EXISTS history_item ON history (item_id, id);
-- The audit log's filters (who, where), newest first: each walks its own part of an index.
CREATE INDEX IF NOT EXISTS history_actor ON history (actor, id);
CREATE INDEX IF NOT EXISTS history_location ON history (location, id);

-- A store's day (version 4): transfers between locations and reservations, one row each.
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES items (id),
    from_location TEXT NOT NULL,
    to_location TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    state TEXT NOT NULL CHECK (state IN ('in_transit', 'received', 'cancelled')),
    shipped_at TEXT NOT NULL,
    received INTEGER NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= quantity),
    closed_at TEXT,
    note TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS transfers_from ON transfers (from_location, state, shipped_at);
CREATE INDEX IF NOT EXISTS transfers_to ON transfers (to_location, state, shipped_at);
CREATE INDEX IF NOT EXISTS transfers_item ON transfers (item_id, shipped_at);
CREATE INDEX IF NOT EXISTS transfers_state ON transfers (state, shipped_at);

CREATE TABLE IF NOT EXISTS reservations (
    -- The order reservations were made in: a plain release gives back the newest first.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    item_id TEXT NOT NULL REFERENCES items (id),
    location TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity >= 0 AND quantity <= reserved),
    reserved INTEGER NOT NULL CHECK (reserved > 0),
    state TEXT NOT NULL CHECK (state IN ('open', 'committed', 'cancelled', 'expired', 'released')),
    created_at TEXT NOT NULL,
    reference TEXT,
    expires_at TEXT,
    closed_at TEXT
);
CREATE INDEX IF NOT EXISTS reservations_anonymous ON reservations (item_id, location, seq)
    WHERE state = 'open' AND reference IS NULL AND expires_at IS NULL;
CREATE INDEX IF NOT EXISTS reservations_due ON reservations (expires_at)
    WHERE state = 'open' AND expires_at IS NOT NULL;
-- Lists by item or location, newest first. Without the state in the key, closing a reservation
-- (most of them are closed soon after they are made) does not move it in these indexes.
CREATE INDEX IF NOT EXISTS reservations_of_item ON reservations (item_id, seq);
CREATE INDEX IF NOT EXISTS reservations_at_location ON reservations (location, seq);
CREATE INDEX IF NOT EXISTS reservations_reference ON reservations (reference) WHERE reference IS NOT NULL;

-- Stock alerts (version 5): a level crossed into low, into out, or back in stock, decided once by
-- the listener in the transaction of the change (app/domain/alerts.py). Read newest first, at
-- some locations (the low-stock page, the wall, the API) or of one item.
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    location TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('low_stock', 'out_of_stock', 'back_in_stock')),
    available INTEGER NOT NULL,
    threshold INTEGER NOT NULL,
    command_id TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_location ON alerts (location, id);
CREATE INDEX IF NOT EXISTS alerts_item ON alerts (item_id, id);

CREATE TABLE IF NOT EXISTS command_outcomes (
    command_id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    location TEXT,
    status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    reason TEXT,
    message TEXT,
    version INTEGER,
    actor TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    processed_at TEXT NOT NULL
) WITHOUT ROWID;

-- The outbox: every committed change, numbered. The relay publishes them in order and keeps how
-- far it got in meta ('published_seq'): one small write per round, not one per change.
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    item_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Event ids already applied, to drop a second copy that arrives at another offset (a retried
-- publish). Kept for the dedup retention window (applied_at in epoch seconds), then pruned.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS consumer_positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;

-- Stock events that overtook their item's create wait here (bounded: INVENTORY_ORPHAN_WAIT, see docs/architecture.md).
CREATE TABLE IF NOT EXISTS parked_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    value BLOB NOT NULL,
    parked_at TEXT NOT NULL,
    deadline REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_item ON parked_events (item_id, id);

CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    headers TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    replayed_at TEXT,
    UNIQUE (topic, partition, "offset")
);

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Search by several words: a trigram full-text index over the items' SKU and name (every word a
-- substring of either, app/domain/search.py). It holds no copy of the text (content='items') and
-- is kept in step by triggers inside the listener's own transaction; the update trigger fires
-- only when the SKU or name changed, so a stock change (most writes) costs nothing here.
CREATE VIRTUAL TABLE IF NOT EXISTS items_search USING fts5(
    sku, name, content='items', content_rowid='rowid', tokenize='trigram'
);
CREATE TRIGGER IF NOT EXISTS items_search_insert AFTER INSERT ON items BEGIN
    INSERT INTO items_search (rowid, sku, name) VALUES (new.rowid, new.sku, new.name);
END;
CREATE TRIGGER IF NOT EXISTS items_search_delete AFTER DELETE ON items BEGIN
    INSERT INTO items_search (items_search, rowid, sku, name) VALUES ('delete', old.rowid, old.sku, old.name);
END;
CREATE TRIGGER IF NOT EXISTS items_search_update AFTER UPDATE OF sku, name ON items
    WHEN old.sku IS NOT new.sku OR old.name IS NOT new.name BEGIN
    INSERT INTO items_search (items_search, rowid, sku, name) VALUES ('delete', old.rowid, old.sku, old.name);
    INSERT INTO items_search (rowid, sku, name) VALUES (new.rowid, new.sku, new.name);
END;
"""


# Indexes on columns that older files gain in _migrate: created after it.
INDEXES_ON_MIGRATED_COLUMNS = (
    "CREATE INDEX IF NOT EXISTS processed_events_applied ON processed_events (applied_at)",
    # Chain-wide lists sorted by stock read the totals on the item row.
    "CREATE INDEX IF NOT EXISTS items_live_available ON items (quantity - reserved) WHERE deleted_at IS NULL",
    "CREATE INDEX IF NOT EXISTS items_live_quantity ON items (quantity) WHERE deleted_at IS NULL",
    # The audit log's reason filter (history.reason is a version 4 column), and its rejected
    # commands newest first: a few among every command's outcome.
    "CREATE INDEX IF NOT EXISTS history_reason ON history (reason, id)",
    "CREATE INDEX IF NOT EXISTS command_outcomes_rejected ON command_outcomes (processed_at, command_id) "
    "WHERE status = 'rejected'",
)


async def open_writer(path: str, *, low_stock_threshold: int = DEFAULT_THRESHOLD) -> aiosqlite.Connection:
    """The listener's connection: the only one that ever writes this file. ``low_stock_threshold``
    is the default threshold, which an older file's levels take their alert state by."""
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode is durable against process crashes (the promise we test with kill -9);
    # FULL also survives power loss at the cost of an fsync per batch. We take FULL.
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute("PRAGMA busy_timeout=5000")
    await conn.execute("PRAGMA foreign_keys=ON")
    # Batches write megabytes: a larger page cache and fewer, larger checkpoints keep the writer
    # from re-reading and re-syncing the same pages.
    await conn.execute("PRAGMA cache_size=-65536")
    await conn.execute("PRAGMA wal_autocheckpoint=10000")
    await conn.execute("PRAGMA temp_store=MEMORY")
    await conn.executescript(SCHEMA)
    await _migrate(conn, low_stock_threshold)
    for statement in INDEXES_ON_MIGRATED_COLUMNS:
        await conn.execute(statement)
    await _fill_search_index(conn)
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )
    return conn


async def _migrate(conn: aiosqlite.Connection, low_stock_threshold: int) -> None:
    """Bring a database written by an older version up to SCHEMA_VERSION, in place."""
    async with conn.execute("PRAGMA table_info(processed_events)") as cursor:
        columns = {row[1] for row in await cursor.fetchall()}
    if "applied_at" not in columns:
        # Version 1 kept processed ids forever. Their age is unknown, so they count from now:
        # nothing is pruned before a full retention window has passed.
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute("ALTER TABLE processed_events ADD COLUMN applied_at INTEGER NOT NULL DEFAULT 0")
        await conn.execute("UPDATE processed_events SET applied_at = ?", (int(time.time()),))
        await conn.execute("COMMIT")
    async with conn.execute("PRAGMA table_info(items)") as cursor:
        columns = {row[1] for row in await cursor.fetchall()}
    if "quantity" not in columns:
        # Version 2 added up an item's levels on every read: the totals move onto the item row,
        # computed once here from the levels, then kept by the listener.
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute("ALTER TABLE items ADD COLUMN quantity INTEGER NOT NULL DEFAULT 0")
        await conn.execute("ALTER TABLE items ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0")
        await conn.execute(
            "UPDATE items SET quantity = t.q, reserved = t.r FROM "
            "(SELECT item_id, SUM(quantity) AS q, SUM(reserved) AS r FROM stock_levels GROUP BY item_id) AS t "
            "WHERE t.item_id = items.id"
        )
        await conn.execute("COMMIT")
    async with conn.execute("PRAGMA table_info(items)") as cursor:
        columns = {row[1] for row in await cursor.fetchall()}
    if "in_transit" not in columns:
        await _migrate_to_store_day(conn)
    async with conn.execute("PRAGMA table_info(stock_levels)") as cursor:
        columns = {row[1] for row in await cursor.fetchall()}
    if "alert" not in columns:
        await _migrate_to_alerts(conn, low_stock_threshold)


async def _migrate_to_alerts(conn: aiosqlite.Connection, low_stock_threshold: int) -> None:
    """Version 4 to 5: every level takes the alert state it is in now (app/domain/alerts.py
    ``initial_state``), and no alert: an upgrade must not page anyone about stock that was low
    long before it. The same rule as initial_state, in one statement over the whole table."""
    await conn.execute("BEGIN IMMEDIATE")
    await conn.execute(
        "ALTER TABLE stock_levels ADD COLUMN alert TEXT NOT NULL DEFAULT 'ok' CHECK (alert IN ('ok', 'low', 'out'))"
    )
    available = "stock_levels.quantity - stock_levels.reserved"
    # Levels above their threshold keep the column's default ('ok'): only the others are written.
    await conn.execute(
        f"UPDATE stock_levels SET alert = CASE WHEN {available} <= 0 THEN 'out' ELSE 'low' END "
        f"FROM items i WHERE i.id = stock_levels.item_id AND {available} <= MAX(COALESCE(i.low_stock_threshold, ?), 0)",
        (low_stock_threshold,),
    )
    await conn.execute("COMMIT")


async def _fill_search_index(conn: aiosqlite.Connection) -> None:
    """A file from before the search index has its items but an empty index: fill it once from
    the items (the triggers keep it from then on). The mark in meta makes it once per file."""
    async with conn.execute("SELECT 1 FROM meta WHERE key = 'items_search_filled'") as cursor:
        if await cursor.fetchone() is not None:
            return
    await conn.execute("BEGIN IMMEDIATE")
    await conn.execute("INSERT INTO items_search (items_search) VALUES ('rebuild')")
    await conn.execute("INSERT INTO meta (key, value) VALUES ('items_search_filled', '1')")
    await conn.execute("COMMIT")


# Reserved units from before reservation records: each level's become one plain reservation.
CARRIED_OVER = uuid.UUID("0e8c7a52-3b1f-4d6a-9e2c-7f4b1a5d8c36")


async def _migrate_to_store_day(conn: aiosqlite.Connection) -> None:
    """Version 3 to 4: units in transit on the item, reasons and references in the history, and
    the units already reserved carried over as one plain (anonymous) reservation per level, so
    a plain release gives them back as before (docs/decisions.md)."""
    await conn.execute("BEGIN IMMEDIATE")
    await conn.execute("ALTER TABLE items ADD COLUMN in_transit INTEGER NOT NULL DEFAULT 0")
    async with conn.execute("PRAGMA table_info(history)") as cursor:
        history_columns = {row[1] for row in await cursor.fetchall()}
    for column, kind in (("reason", "TEXT"), ("reference", "TEXT"), ("expected", "INTEGER")):
        if column not in history_columns:
            await conn.execute(f"ALTER TABLE history ADD COLUMN {column} {kind}")
    async with conn.execute(
        "SELECT item_id, location, reserved, updated_at FROM stock_levels WHERE reserved > 0 ORDER BY item_id, location"
    ) as cursor:
        rows = list(await cursor.fetchall())
    await conn.executemany(
        "INSERT OR IGNORE INTO reservations (id, item_id, location, quantity, reserved, state, created_at) "
        "VALUES (?, ?, ?, ?, ?, 'open', ?)",
        [
            (str(uuid.uuid5(CARRIED_OVER, f"{item_id}:{location}")), item_id, location, reserved, reserved, updated_at)
            for item_id, location, reserved, updated_at in rows
        ],
    )
    await conn.execute("COMMIT")
