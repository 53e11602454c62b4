"""CSV imports: preview an upload (nothing applied), confirm it, and the background runner that
submits the confirmed rows as commands and follows their outcomes.

Exactly once per row comes from two things together: each row's command carries an
idempotency key derived from the file's digest, the kind and the row number
(app/domain/imports.py ``idempotency_key``), and each row's status is kept in imports.db. A
runner killed anywhere resumes from the stored statuses; a row whose command was recorded but
not yet marked submitted is submitted again under the same key, which the command service
answers with the same command (and the listener drops a second copy of its event).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.clock import utc_now
from app.commands.errors import CommandRefused, Overloaded
from app.commands.service import Accepted, CommandApplied, CommandRejected, CommandService, Submission
from app.domain.catalogue import Places
from app.domain.imports import (
    KINDS,
    FileRefused,
    Kind,
    Limits,
    decode_command,
    encode_command,
    idempotency_key,
    parse_file,
    with_item,
    within_scope,
)
from app.eventlog.base import LogUnavailable
from app.imports.store import ImportRecord, ImportStore, NewRow, StoredRow
from app.metrics import IMPORT_ROWS
from app.reader import InventoryReader, ReadModelUnavailable

log = logging.getLogger(__name__)

# Rows submitted at once: their records share the command store's group commit and their
# events go to the log together, without holding the event loop from other requests long.
SUBMIT_BATCH = 200
# Rows per second an import submits unless INVENTORY_IMPORT_ROWS_PER_SECOND says otherwise.
DEFAULT_ROWS_PER_SECOND = 300
# Outcomes asked of the read model per query.
OUTCOME_BATCH = 500
# How often outcomes are collected while rows are still being submitted.
COLLECT_EVERY_SECONDS = 1.0
IDLE_SECONDS = 0.5
# How long a runner's claim on a running import lasts (app/imports/store.py ``claim``): another
# command node takes the import over this long after its holder stopped renewing it.
LEASE_SECONDS = 30.0
ALREADY_APPLIED = "already applied by an earlier import of this file"


class ImportNotFound(Exception):
    pass


class ImportConflict(Exception):
    """The import is not in a state that allows the request (confirm twice, nothing valid)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def may_see(record: ImportRecord, principal: Principal) -> bool:
    """Its author, and admins; anyone else is told it does not exist (ids do not leak)."""
    return record.username == principal.username or principal.can(Role.ADMIN)


class ImportService:
    def __init__(
        self,
        store: ImportStore,
        reader: InventoryReader,
        *,
        places: Places,
        limits: Limits,
    ) -> None:
        self.store = store
        self.limits = limits
        self._reader = reader
        self._places = places
        self._wake = asyncio.Event()

    async def preview(self, data: bytes, kind: str, filename: str, principal: Principal) -> ImportRecord:
        """Check every row and keep the import, previewed: nothing is applied. FileRefused when
        the file itself cannot be imported (nothing is kept then)."""
        if kind not in KINDS:
            raise FileRefused(f"kind must be one of: {', '.join(KINDS)}", column="kind")
        checked_kind: Kind = kind
        # Reading 100,000 rows takes a moment of CPU: off the event loop, so other requests go on.
        parsed = await asyncio.to_thread(parse_file, data, checked_kind, self._places, self.limits)
        item_ids = await self._item_ids({row.sku for row in parsed.rows if row.sku})
        rows = [
            within_scope(with_item(row, checked_kind, item_ids, parsed.digest), principal.locations)
            for row in parsed.rows
        ]
        record = ImportRecord(
            id=str(uuid.uuid4()),
            kind=kind,
            sha256=parsed.digest,
            filename=filename[:200],
            username=principal.username,
            columns=parsed.columns,
            created_at=utc_now(),
            state="previewed",
            confirmed_at=None,
            finished_at=None,
        )
        kept = [
            NewRow(row.number, row.cells, row.errors, encode_command(row.command) if row.command is not None else None)
            for row in rows
        ]
        await self.store.keep(record, kept)
        return record

    async def _item_ids(self, skus: Collection[str]) -> dict[str, str]:
        """The live item each SKU names (as the read model knows it now)."""
        found: dict[str, str] = {}
        wanted = sorted(skus)
        for start in range(0, len(wanted), OUTCOME_BATCH):
            chunk = wanted[start : start + OUTCOME_BATCH]
            try:
                rows = await self._reader.rows(
                    f"SELECT sku, id FROM items WHERE deleted_at IS NULL AND sku IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
            except ReadModelUnavailable:
                rows = []  # no read model yet: no items, every SKU is unknown
            found.update({str(sku): str(item_id) for sku, item_id in rows})
        return found

    async def get(self, import_id: str, principal: Principal) -> ImportRecord:
        record = await self.store.get(import_id)
        if record is None or not may_see(record, principal):
            raise ImportNotFound(import_id)
        return record

    async def confirm(self, import_id: str, principal: Principal) -> ImportRecord:
        """Start applying the valid rows, as the user who uploaded them."""
        record = await self.get(import_id, principal)
        if record.username != principal.username:
            raise ImportConflict("only the person who uploaded the file may confirm it")
        if record.state != "previewed":
            raise ImportConflict(f"the import is {record.state}: it can be confirmed once")
        if await self.store.count(import_id, "valid") == 0:
            raise ImportConflict("the file has no valid rows: nothing to apply")
        if not await self.store.set_state(import_id, "running", at=utc_now(), column="confirmed_at"):
            raise ImportConflict("the import was confirmed already")
        self._wake.set()
        return await self.get(import_id, principal)

    async def wait_for_work(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()


@dataclass
class _Round:
    submitted: list[tuple[int, str]]
    refused: list[tuple[int, str]]
    stop: bool = False


class ImportRunner:
    """In the command role: applies confirmed imports, and on start resumes the ones a stopped
    or killed process left running."""

    def __init__(
        self,
        imports: ImportService,
        commands: CommandService,
        reader: InventoryReader,
        *,
        rows_per_second: int = DEFAULT_ROWS_PER_SECOND,
        holder: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        # Names this runner in the leases of the imports it advances (one per process).
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease_seconds = lease_seconds
        self._imports = imports
        self._store = imports.store
        self._commands = commands
        self._reader = reader
        # An import is paced: a burst of thousands of commands would take the machine's cores
        # from the pages and the walls (docs/decisions.md, "CSV imports"). Small batches, often,
        # keep the load even.
        self._rows_per_second = rows_per_second
        self._batch = max(1, min(SUBMIT_BATCH, rows_per_second // 10))

    async def run(self) -> None:
        while True:
            try:
                for record in await self._store.with_state("running"):
                    # Another runner (a command node of its own) holding it advances it.
                    if await self._store.claim(record.id, self.holder, self._lease_seconds):
                        await self.advance(record)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("import runner failed a round; trying again")
            await self._imports.wait_for_work(IDLE_SECONDS)

    async def advance(self, record: ImportRecord) -> None:
        """Submit what is left of an import and collect what is decided; done when every row is."""
        collected_at = started = claimed_at = time.monotonic()
        sent = 0
        while True:
            if time.monotonic() - claimed_at > self._lease_seconds / 3:
                if not await self._store.claim(record.id, self.holder, self._lease_seconds):
                    log.warning("import %s: its lease went to another runner; leaving it", record.id)
                    return
                claimed_at = time.monotonic()
            rows = await self._store.rows(record.id, status="valid", limit=self._batch)
            if not rows:
                break
            earlier = await self._store.earlier_commands(record, [row.row for row in rows])
            if earlier:
                # Sent by an earlier import of this very file: its command stands for the row (the
                # outcome then reads "already applied by an earlier import of this file").
                await self._store.mark_submitted(record.id, sorted(earlier.items()))
                rows = [row for row in rows if row.row not in earlier]
                if not rows:
                    continue
            outcome = await self._submit(record, rows)
            if outcome.submitted:
                await self._store.mark_submitted(record.id, outcome.submitted)
                IMPORT_ROWS.labels(record.kind, "submitted").inc(len(outcome.submitted))
            if outcome.refused:
                await self._store.mark_refused(record.id, outcome.refused)
                IMPORT_ROWS.labels(record.kind, "rejected").inc(len(outcome.refused))
            if outcome.stop:
                return  # the log is away or the service full: the next round goes on
            if time.monotonic() - collected_at > COLLECT_EVERY_SECONDS:
                await self._collect(record)
                collected_at = time.monotonic()
            sent += len(rows)
            # Not before the pace allows; at least a turn for other requests between batches.
            await asyncio.sleep(max(0.0, started + sent / self._rows_per_second - time.monotonic()))
        await self._collect(record)
        progress = await self._store.progress(record.id)
        if progress.pending == 0:
            await self._store.set_state(record.id, "done", at=utc_now(), column="finished_at")
            log.info("import %s done: %d applied, %d rejected", record.id, progress.applied, progress.rejected)

    async def _submit(self, record: ImportRecord, rows: list[StoredRow]) -> _Round:
        results = await asyncio.gather(*(self._submit_row(record, row) for row in rows), return_exceptions=True)
        done = _Round([], [])
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, Accepted | CommandApplied | CommandRejected):
                done.submitted.append((row.row, result.command_id))
            elif isinstance(result, LogUnavailable | Overloaded):
                done.stop = True
            elif isinstance(result, CommandRefused):
                done.refused.append((row.row, result.message))
            elif isinstance(result, BaseException):
                log.error("import %s row %d could not be submitted", record.id, row.row, exc_info=result)
                done.stop = True
            else:  # answered before over HTTP under this key: not this import's to apply
                done.refused.append((row.row, "the idempotency key was used by another request"))
        return done

    async def _submit_row(self, record: ImportRecord, row: StoredRow) -> object:
        assert row.command is not None
        command = decode_command(row.command)
        kind: Kind = record.kind  # type: ignore[assignment]
        return await self._commands.submit(
            Submission(
                command=command,
                actor=record.username,
                request_id=f"import-{record.id}",
                request_hash=hashlib.sha256(bytes(row.command)).hexdigest(),
                idempotency_key=idempotency_key(kind, record.sha256, row.row),
                # The rows were checked at upload; the listener decides the rest.
                precheck=False,
            )
        )

    async def _collect(self, record: ImportRecord) -> None:
        """Rows whose commands the listener decided become applied or rejected."""
        after = 0
        while True:
            rows = await self._store.rows(record.id, status="submitted", after=after, limit=OUTCOME_BATCH)
            if not rows:
                return
            after = rows[-1].row
            by_command = {row.command_id: row.row for row in rows if row.command_id}
            try:
                found = await self._reader.rows(
                    "SELECT command_id, status, reason, message, submitted_at FROM command_outcomes "
                    f"WHERE command_id IN ({', '.join('?' * len(by_command))})",
                    list(by_command),
                )
            except ReadModelUnavailable:
                return
            decided = []
            for command_id, status, reason, message, submitted_at in found:
                why = message or reason if status == "rejected" else None
                if status == "applied" and record.confirmed_at and str(submitted_at) < record.confirmed_at:
                    why = ALREADY_APPLIED
                decided.append((by_command[str(command_id)], str(status), why))
            if decided:
                await self._store.mark_decided(record.id, decided)
                for status in ("applied", "rejected"):
                    IMPORT_ROWS.labels(record.kind, status).inc(sum(1 for _, s, _ in decided if s == status))
            await asyncio.sleep(0)
