"""Hot API reads answered from bytes kept in this process (docs/decisions.md, "Hot reads").

The read path through the whole application (authentication middleware, guards, dependency
injection, a SQLite read on a thread, a cache write, encoding) costs about a millisecond of CPU;
most reads repeat an answer given a moment ago. So each query process keeps the encoded answers
of its two hottest API reads, exactly as the application produced them:

- ``GET /api/v1/inventory/items/{id}/stock`` (no query string), kept per item until the feed
  announces a newer version of that item (``FreshnessFloor.raise_to`` calls ``forget``);
- ``GET /api/v1/inventory/items?...`` (the list, any query string), kept for the sequence it was
  read at: the next announced change of any item ends it.

Only what the application answered with 200 to a bearer token is kept; anything else (another
credential, ``X-Min-Seq``, HEAD, an error) takes the application's path, so rules, errors and
their shapes stay in one place. A fill that raced with a change is dropped (``begin``/``keep``).
Bounded by bytes, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from app.metrics import HOT_READS, track_size

HITS, MISSES = HOT_READS.labels("hit"), HOT_READS.labels("miss")

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    # The sequence a list answer holds for; None for an item's answer (ended by ``forget``).
    seq: int | None

    @property
    def size(self) -> int:
        return len(self.body) + 64 * len(self.headers) + 200


class AnswerCache:
    def __init__(self, max_bytes: int) -> None:
        self._answers: OrderedDict[Key, Answer] = OrderedDict()
        self._filling: dict[Key, object] = {}
        self._bytes = 0
        self.max_bytes = max_bytes
        track_size("hot_read_answers", None, lambda: len(self._answers))

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: Key, seq: int) -> Answer | None:
        answer = self._answers.get(key)
        if answer is None:
            MISSES.inc()
            return None
        if answer.seq is not None and answer.seq != seq:
            self._drop(key)
            MISSES.inc()
            return None
        self._answers.move_to_end(key)
        HITS.inc()
        return answer

    def begin(self, key: Key) -> object:
        """Before reading an answer to keep: the token ``keep`` needs."""
        token = object()
        self._filling[key] = token
        return token

    def keep(self, key: Key, token: object, answer: Answer) -> None:
        """Keep an answer unless its item changed (or another fill began) since ``begin``."""
        if self._filling.get(key) is not token:
            return
        del self._filling[key]
        if answer.size > self.max_bytes // 8:
            return  # one huge answer must not empty the cache
        self._drop(key)
        self._answers[key] = answer
        self._bytes += answer.size
        while self._bytes > self.max_bytes:
            oldest = next(iter(self._answers))
            self._drop(oldest)

    def abandon(self, key: Key, token: object) -> None:
        if self._filling.get(key) is token:
            del self._filling[key]

    def forget(self, item_id: str) -> None:
        """A newer version of the item is known: its answer (and any fill in flight) is out."""
        key = ("stock", item_id)
        self._filling.pop(key, None)
        self._drop(key)

    def clear(self) -> None:
        self._answers.clear()
        self._filling.clear()
        self._bytes = 0

    def _drop(self, key: Key) -> None:
        answer = self._answers.pop(key, None)
        if answer is not None:
            self._bytes -= answer.size
