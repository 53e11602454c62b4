"""What the listener serves its nodes (docs/scaling.md): a consistent snapshot of the read
model, and the outbox's change records after a sequence. A node starts from the first and
follows with the second (and Kafka); the node's side is app/replica/.

Both are for the deployment's own processes only (app/http/internal.py), never for users.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Response, Stream

from app.domain.records import ChangesPage
from app.http.auth import PUBLIC
from app.http.errors import ApiError
from app.http.internal import INTERNAL_PATH, require_internal
from app.reader import InventoryReader
from app.settings import Settings

# The listener-internal tables: a node has no use for them (and processed event ids are many).
INTERNAL_TABLES = ("processed_events", "parked_events", "consumer_positions", "dead_letters")
MAX_PAGE = 5000
CHUNK = 1 << 20
# Snapshots are whole copies of the file: made one at a time, so a crowd of starting nodes
# does not make a crowd of copies at once.
_one_snapshot = asyncio.Lock()


def make_snapshot(source: Path, target: Path) -> int:
    """Copy the database with ``VACUUM INTO``: one statement, so one read transaction, and the
    copy is the state of one commit, taken online while the listener goes on writing (readers
    never block the writer in WAL mode). Then empty the listener-internal tables in the copy and
    write into it the sequence it contains. Returns that sequence. ``target`` must not exist."""
    src = sqlite3.connect(source, isolation_level=None, timeout=30)
    try:
        src.execute("VACUUM INTO ?", (str(target),))
    finally:
        src.close()
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        # The copy's own counter is the last sequence committed before the copy, even when the
        # outbox rows themselves were pruned.
        row = dst.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        seq = int(row[0]) if row else 0
        dst.execute("BEGIN")
        for table in INTERNAL_TABLES:
            dst.execute(f"DELETE FROM {table}")
        dst.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [("replica_seq", str(seq)), ("published_seq", str(seq))],
        )
        dst.execute("COMMIT")
        free, pages = dst.execute("PRAGMA freelist_count").fetchone()[0], dst.execute("PRAGMA page_count").fetchone()[0]
        if free * 4 > pages:  # mostly processed event ids: not worth shipping as free pages
            dst.execute("VACUUM")
    finally:
        dst.close()
    return seq


def _prepared(source: Path, directory: Path) -> tuple[Path, int, int]:
    """A snapshot in a new file of ``directory``: (its path, its sequence, its size)."""
    # VACUUM INTO wants a name that does not exist yet: a fresh directory holds it.
    path = Path(tempfile.mkdtemp(prefix="snapshot-", dir=directory)) / "inventory.db"
    try:
        seq = make_snapshot(source, path)
        return path, seq, path.stat().st_size
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise


def _opened_and_removed(path: Path) -> BinaryIO:
    """Open the prepared file and remove it from the disk at once: the open handle keeps its
    content readable, and the space comes back when the handle closes, however the download
    ends (a client that goes away mid-stream leaves nothing behind)."""
    handle = path.open("rb")
    shutil.rmtree(path.parent, ignore_errors=True)
    return handle


async def _file_chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    with handle:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            yield chunk


class ListenerInternalController(Controller):
    path = INTERNAL_PATH
    include_in_schema = False
    opt = {PUBLIC: True}

    @get("/snapshot")
    async def snapshot(self, request: Request[Any, Any, Any], settings: NamedDependency[Settings]) -> Stream:
        """The read model as one SQLite file, with the sequence it contains (``X-Inventory-Seq``)."""
        require_internal(request, settings)
        async with _one_snapshot:
            path, seq, size = await asyncio.to_thread(_prepared, settings.inventory_db, settings.data_dir)
        handle = await asyncio.to_thread(_opened_and_removed, path)
        return Stream(
            _file_chunks(handle),
            media_type="application/vnd.sqlite3",
            headers={"X-Inventory-Seq": str(seq), "Content-Length": str(size)},
        )

    @get("/changes")
    async def changes(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        reader: NamedDependency[InventoryReader],
        after: int = 0,
        limit: int = 1000,
    ) -> Response[bytes]:
        """The outbox after a sequence; 410 ``pruned`` when the records just after it are gone."""
        require_internal(request, settings)
        if after < 0 or not 1 <= limit <= MAX_PAGE:
            raise ApiError(400, f"after must be >= 0 and limit between 1 and {MAX_PAGE}")
        last_rows = await reader.rows("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
        last = int(last_rows[0][0]) if last_rows else 0
        oldest_rows = await reader.rows("SELECT MIN(seq) FROM changes")
        oldest = int(oldest_rows[0][0]) if oldest_rows and oldest_rows[0][0] is not None else last + 1
        if after < last and after + 1 < oldest:
            raise ApiError(
                410,
                f"the changes after {after} are no longer kept (oldest kept: {oldest}); take a snapshot",
                error="pruned",
                details={"oldest": oldest, "last": last},
            )
        rows = await reader.rows(
            "SELECT seq, kind, item_id, payload FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        page = ChangesPage(oldest, last, [(int(s), str(k), str(i), str(p)) for s, k, i, p in rows])
        return Response(msgspec.json.encode(page), media_type="application/json")
