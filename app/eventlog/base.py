"""One small interface to a partitioned, durable log, with two adapters behind it.

``kafka.KafkaEventLog`` talks to Apache Kafka; ``embedded.EmbeddedEventLog`` keeps the same
topics, keys, partitions and offsets in a SQLite file so the product runs with Python only.
Code above this layer never knows which one it has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Headers = tuple[tuple[str, bytes], ...]
TopicPartition = tuple[str, int]
# Given the partitions just assigned, return the next offset to read for each one we know.
PositionLoader = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
StartAt = Literal["earliest", "latest"]


class LogUnavailable(RuntimeError):
    """The log did not take the message (broker down, timeout). Nothing was acknowledged."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    # None keeps messages forever: command topics are the history a rebuild replays.
    retention_ms: int | None = None


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default=())
    timestamp_ms: int = 0

    @property
    def position(self) -> TopicPartition:
        return (self.topic, self.partition)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None


class EventConsumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def fetch(self, max_records: int, timeout: float) -> list[Record]:
        """Up to max_records, in offset order per partition; empty after timeout seconds."""
        ...

    async def commit(self, positions: dict[TopicPartition, int]) -> None:
        """Tell the log how far we got (for lag and tools; our own positions live with our data)."""
        ...

    async def seek(self, positions: dict[TopicPartition, int]) -> None:
        """Read these partitions again from the given offsets (after a failed batch)."""
        ...

    async def lag(self) -> int | None:
        """Messages behind the end of the assigned partitions, if known."""
        ...


class EventLog(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None: ...

    async def publish(self, messages: Sequence[Message]) -> None:
        """Return once every message is durably in the log; raise LogUnavailable otherwise."""
        ...

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str | None,
        start_at: StartAt = "earliest",
        positions: PositionLoader | None = None,
    ) -> EventConsumer: ...

    async def ping(self) -> bool:
        """True if the log answers now."""
        ...

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """The next offset of every partition of these topics (0 for an empty partition)."""
        ...
