"""Replaying a dead letter: its original bytes go back to its topic, marked as a replay.

The listener records the replay against the dead letter (``replayed_at``) in the same
transaction in which it handles the message again; a message that still cannot be applied
simply becomes a new dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from app.domain.events import COMMAND_TOPICS, REPLAY_HEADER
from app.eventlog.base import EventLog, Message
from app.http.internal_calls import Surface
from app.reader import InventoryReader


class DeadLetterNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Replayed:
    dead_letter_id: int
    topic: str


class DeadLetter(TypedDict):
    """A dead letter as InventoryReader.dead_letters gives it (what a node's call converts to)."""

    id: int
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    error: str
    attempts: int
    created_at: str
    replayed_at: str | None


class DeadLetterReplayer:
    def __init__(self, reader: InventoryReader, event_log: EventLog) -> None:
        self._reader = reader
        self._log = event_log

    async def list(self, *, limit: int = 100) -> list[dict[str, Any]]:
        return await self._reader.dead_letters(limit=limit)

    async def replay(self, letter_id: int, *, actor: str) -> Replayed:
        found = await self._reader.dead_letters(limit=1, letter_id=letter_id)
        if not found:
            raise DeadLetterNotFound(letter_id)
        letter = found[0]
        if letter["topic"] not in COMMAND_TOPICS:
            raise DeadLetterNotFound(letter_id)
        headers = tuple((k, v) for k, v in letter["headers"] if not k.startswith(("dlq-", "replay")))
        headers += ((REPLAY_HEADER, str(letter_id).encode()), ("replayed-by", actor.encode()))
        await self._log.publish([Message(letter["topic"], letter["key"], letter["value"], headers)])
        return Replayed(letter_id, letter["topic"])


# What a node calls of the listener's replayer (app/http/internal_calls.py): the dead letters are
# in the listener's inventory.db (a node's replica has none), and the listener looks the letter up
# and publishes it again.
SURFACE = Surface(
    DeadLetterReplayer,
    frozenset({"list", "replay"}),
    errors=(DeadLetterNotFound,),
    returns={"list": list[DeadLetter]},
)
