"""A backlog of command events written straight into the command topics, for the catch-up test.

The events are built with the project's own event builders (``tests/support/events.py``), so
they are exactly what the command service publishes. Per item they cycle adjust +1, reserve 1,
release 1: every one of them is applied, none is parked (the items exist already).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from app.eventlog.base import EventLog, Message
from app.eventlog.embedded import EmbeddedEventLog
from app.eventlog.kafka import KafkaEventLog
from app.eventlog.topics import TOPICS
from tests.support import events as builders

CHUNK = 2_000


def backlog(items: Sequence[str], count: int) -> tuple[list[Message], list[str]]:
    """``count`` stock events over ``items``; the messages and their command ids."""
    messages: list[Message] = []
    command_ids: list[str] = []
    for index in range(count):
        item = items[index % len(items)]
        step = (index // len(items)) % 3
        if step == 0:
            event = builders.adjust(item, 1)
        elif step == 1:
            event = builders.reserve(item, 1)
        else:
            event = builders.release(item, 1)
        messages.append(builders.message(event))
        command_ids.append(event.command_id)
    return messages, command_ids


def creates(count: int, prefix: str) -> tuple[list[Message], list[str], list[str]]:
    """``count`` item creates (quantity 10 at MAIN); the messages, command ids and item ids."""
    messages: list[Message] = []
    command_ids: list[str] = []
    item_ids: list[str] = []
    for index in range(count):
        item_id = str(uuid.uuid4())
        event = builders.create(item_id, f"{prefix}-{index:06d}", 10)
        messages.append(builders.message(event))
        command_ids.append(event.command_id)
        item_ids.append(item_id)
    return messages, command_ids, item_ids


async def produce(event_log: EventLog, messages: Sequence[Message]) -> float:
    """Publish in chunks (each durably acknowledged); return the seconds it took."""
    started = time.monotonic()
    await event_log.start()
    try:
        await event_log.ensure_topics(TOPICS)
        for first in range(0, len(messages), CHUNK):
            await event_log.publish(messages[first : first + CHUNK])
    finally:
        await event_log.stop()
    return time.monotonic() - started


def embedded_log(data_dir: Path) -> EventLog:
    """The embedded log's file; only while no process of the stack has it open for writing."""
    return EmbeddedEventLog(data_dir / "eventlog.db")


def kafka_log(bootstrap: str, prefix: str) -> EventLog:
    return KafkaEventLog(bootstrap, client_id="inventory-bench-backlog", publish_timeout=60.0, topic_prefix=prefix)
