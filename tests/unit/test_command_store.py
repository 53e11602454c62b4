"""The command store's group commit: concurrent writes share a transaction, a taken key fails
only its own write, and what a 202 promised is in the file for every reader."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.commands.store import AcceptedCommand, CommandLookup, CommandStore, IdempotencyKeyTaken


def accepted(key: str | None = None) -> AcceptedCommand:
    return AcceptedCommand(
        command_id=str(uuid.uuid4()),
        item_id=str(uuid.uuid4()),
        event_type="inventory.stock.reserved",
        sku=None,
        actor="ada",
        request_id="req-1",
        submitted_at="2026-01-01T00:00:00.000Z",
        state="publishing" if key else "published",
        topic="inventory.stock",
        event=b"{}",
        idem_scope="ada" if key else None,
        idem_key=key,
        request_hash="a" * 64 if key else None,
        idem_expires=4_000_000_000.0 if key else None,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CommandStore]:
    opened = CommandStore(tmp_path / "commands.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_concurrent_records_commit_together_and_a_taken_key_fails_alone(store: CommandStore) -> None:
    first = accepted("key-1")
    await store.record(first)
    plain = [accepted() for _ in range(20)]
    keyed = [accepted(f"key-{n}") for n in range(2, 6)]
    again = accepted("key-1")
    results = await asyncio.gather(
        *(store.record(c) for c in [*plain[:10], again, *keyed, *plain[10:]]), return_exceptions=True
    )
    assert [type(r) for r in results].count(IdempotencyKeyTaken) == 1
    assert isinstance(results[10], IdempotencyKeyTaken)
    lookup = CommandLookup(store.connection)
    for command in [first, *plain, *keyed]:
        found = await lookup.get(command.command_id)
        assert found is not None and found.command_id == command.command_id
    assert await lookup.get(again.command_id) is None
    found_key = await store.find("ada", "key-1")
    assert found_key is not None and found_key.command_id == first.command_id


async def test_a_record_and_its_answer_are_in_the_file_for_another_connection(
    store: CommandStore, tmp_path: Path
) -> None:
    plain, keyed = accepted(), accepted("key-9")
    await asyncio.gather(store.record(plain), store.record(keyed))
    await store.save_response(keyed.command_id, 202, {"X-Command-ID": keyed.command_id}, b"{}")
    other = sqlite3.connect(tmp_path / "commands.db")
    try:
        rows = dict(other.execute("SELECT command_id, response_status FROM accepted_commands").fetchall())
    finally:
        other.close()
    assert rows == {plain.command_id: None, keyed.command_id: 202}


async def test_a_write_after_close_is_refused(tmp_path: Path) -> None:
    closing = CommandStore(tmp_path / "commands.db")
    await closing.open()
    await closing.record(accepted())
    writer = closing._writer
    await closing.close()
    assert writer is not None
    with pytest.raises(RuntimeError):
        await writer.execute("UPDATE accepted_commands SET state = 'failed'", ())
