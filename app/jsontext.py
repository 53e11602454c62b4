"""Change records as published: the stored payload with its commit sequence number in front.

The shapes and their encoder and decoders are in ``app/domain/records.py``.
"""

from __future__ import annotations


def change_record(seq: int, payload: str) -> bytes:
    """A stored change (the compact JSON text of an object) as published on the change feed: the
    same object with its commit sequence number first. The relay publishes these bytes, and the
    query side rebuilds the very same bytes from the outbox when it catches up or replays."""
    return b'{"seq":%d,%s' % (seq, payload.encode()[1:])
