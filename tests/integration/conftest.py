"""Both event log adapters behind one fixture: every contract test runs on each."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.eventlog.base import EventLog
from app.eventlog.embedded import EmbeddedEventLog
from app.eventlog.kafka import KafkaEventLog
from app.eventlog.topics import TOPICS


@pytest.fixture(params=["embedded", "kafka"])
def log_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def event_log(log_kind: str, data_dir: Path, request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    log: EventLog
    if log_kind == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        log = KafkaEventLog(bootstrap, client_id="test", topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    else:
        log = EmbeddedEventLog(data_dir / "eventlog.db")
    await log.start()
    await log.ensure_topics(TOPICS)
    try:
        yield log
    finally:
        await log.stop()
