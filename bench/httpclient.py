"""A small HTTP/1.1 client on asyncio protocols: keep-alive requests and server-sent event streams.

Written for the load generator, where the client must cost far less CPU than the server it
measures: requests are pre-encoded bytes, responses are parsed just enough (status, headers,
``Content-Length`` or chunked body), and nothing is copied more than once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

HEAD_END = b"\r\n\r\n"


class HttpError(RuntimeError):
    """The connection broke or the server sent something that is not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[bytes, bytes]  # lower-case names
    body: bytes


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host:port URLs are supported, got {url!r}")
        return cls(parts.hostname, parts.port or 80)

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


def encode_request(
    method: str,
    path: str,
    endpoint: Endpoint,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One request as bytes, ready to be written as it is (as often as wanted)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {endpoint.authority}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body is not None else head


def parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = head.split(b"\r\n")
    status_line = lines[0]
    if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12:
        raise HttpError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line[9:12]), headers


class ChunkedDecoder:
    """Incremental decoder of a ``Transfer-Encoding: chunked`` body."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._remaining = -1  # bytes left in the current chunk; -1 = a size line is next
        self.done = False

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        """Add received bytes; return the body pieces they complete (possibly none)."""
        self._buffer += data
        pieces: list[bytes] = []
        buffer = self._buffer
        while not self.done:
            if self._remaining < 0:
                end = buffer.find(b"\r\n")
                if end < 0:
                    break
                size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise HttpError(f"bad chunk size {size_text[:20]!r}") from None
                del buffer[: end + 2]
                if size == 0:
                    self.done = True  # trailers (if any) are ignored
                    break
                self._remaining = size
            if len(buffer) < self._remaining + 2:
                break
            pieces.append(bytes(buffer[: self._remaining]))
            del buffer[: self._remaining + 2]
            self._remaining = -1
        return pieces


class _ResponseProtocol(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self._status = 0
        self._headers: dict[bytes, bytes] = {}
        self._length = -1  # -1 while the head is not parsed
        self._chunked: ChunkedDecoder | None = None
        self._pieces: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection lost: {exc!r}"))

    def expect(self, waiter: asyncio.Future[Response]) -> None:
        self._waiter = waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except HttpError as exc:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(exc)
            if self.transport is not None:
                self.transport.close()

    def _parse(self) -> None:
        buffer = self._buffer
        if self._length < 0 and self._chunked is None:
            end = buffer.find(HEAD_END)
            if end < 0:
                return
            self._status, self._headers = parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            if self._headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                self._chunked = ChunkedDecoder()
            else:
                self._length = int(self._headers.get(b"content-length", b"0"))
        if self._chunked is not None:
            self._pieces += self._chunked.feed(buffer)
            buffer.clear()
            if not self._chunked.done:
                return
            body = b"".join(self._pieces)
            self._pieces = []
            self._chunked = None
        else:
            if len(buffer) < self._length:
                return
            body = bytes(buffer[: self._length])
            del buffer[: self._length]
            self._length = -1
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._status, self._headers, body))
        if self._headers.get(b"connection", b"").lower() == b"close" and self.transport is not None:
            self.transport.close()


class Connection:
    """A keep-alive HTTP/1.1 connection."""

    def __init__(self, endpoint: Endpoint, protocol: _ResponseProtocol) -> None:
        self.endpoint = endpoint
        self._protocol = protocol

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: float = 10.0) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(_ResponseProtocol, endpoint.host, endpoint.port), timeout
        )
        return cls(endpoint, protocol)

    @property
    def closed(self) -> bool:
        return self._protocol.closed

    async def request(self, raw: bytes, timeout: float = 60.0) -> Response:
        """Send a pre-encoded request (see ``encode_request``) and return the whole response."""
        protocol = self._protocol
        if protocol.closed or protocol.transport is None:
            raise HttpError("connection is closed")
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        protocol.expect(waiter)
        protocol.transport.write(raw)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            self.close()
            raise HttpError(f"no response within {timeout} s") from None

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()


class ConnectionPool:
    """Connections opened on demand (up to ``limit``) and reused; for open-loop load."""

    def __init__(self, endpoint: Endpoint, limit: int) -> None:
        self.endpoint = endpoint
        self._limit = limit
        self._idle: deque[Connection] = deque()
        self._open = 0
        self._freed = asyncio.Condition()
        self.opened = 0  # connections opened in total (reconnects included)

    async def fill(self, count: int) -> None:
        for _ in range(min(count, self._limit) - self._open):
            self._idle.append(await self._new())

    async def _new(self) -> Connection:
        self._open += 1
        try:
            connection = await Connection.open(self.endpoint)
        except BaseException:
            self._open -= 1
            raise
        self.opened += 1
        return connection

    async def request(self, raw: bytes, timeout: float = 60.0) -> Response:
        connection = await self._acquire()
        try:
            response = await connection.request(raw, timeout)
        except BaseException:
            connection.close()
            await self._release(None)
            raise
        await self._release(connection)
        return response

    async def _acquire(self) -> Connection:
        while True:
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed:
                    return connection
                self._open -= 1
            if self._open < self._limit:
                return await self._new()
            async with self._freed:
                await self._freed.wait()

    async def _release(self, connection: Connection | None) -> None:
        if connection is None or connection.closed:
            self._open -= 1
        else:
            self._idle.append(connection)
        async with self._freed:
            self._freed.notify()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


# --- server-sent events ------------------------------------------------------------------

# Called with the event name (b"message" when none is given), the data lines joined by "\n",
# and the monotonic time at which the bytes that completed the event arrived.
EventHandler = Callable[[bytes, bytes, float], None]


class SseProtocol(asyncio.Protocol):
    """One ``text/event-stream`` subscription; comments (keep-alives, ``: connected``) count as
    a sign of life only."""

    def __init__(self, on_event: EventHandler) -> None:
        self._on_event = on_event
        self.transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._status = 0
        self._chunked: ChunkedDecoder | None = None
        self._head_done = False
        self._events = bytearray()
        self.connected: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(HttpError(f"stream closed before it started: {exc!r}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self._head_done:
            self._head += data
            end = self._head.find(HEAD_END)
            if end < 0:
                return
            self._status, headers = parse_head(bytes(self._head[:end]))
            rest = bytes(self._head[end + 4 :])
            self._head = bytearray()
            self._head_done = True
            if self._status != 200:
                self.connected.set_exception(HttpError(f"stream answered {self._status}"))
                if self.transport is not None:
                    self.transport.close()
                return
            if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                self._chunked = ChunkedDecoder()
            data = rest
        pieces = self._chunked.feed(data) if self._chunked is not None else [data]
        for piece in pieces:
            self._events += piece
        self._split(now)

    def _split(self, now: float) -> None:
        events = self._events
        while True:
            end = events.find(b"\r\n\r\n")
            size = 4
            if end < 0:
                end = events.find(b"\n\n")
                size = 2
                if end < 0:
                    return
            block = bytes(events[:end])
            del events[: end + size]
            self._dispatch(block, now)

    def _dispatch(self, block: bytes, now: float) -> None:
        name = b"message"
        data: list[bytes] = []
        for line in block.splitlines():
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif line.startswith(b"event:"):
                name = line[6:].strip()
            elif line.startswith(b":") and not self.connected.done():
                self.connected.set_result(self._status)
        if not self.connected.done():
            self.connected.set_result(self._status)
        if data and (name != b"message" or any(data)):
            self.received += 1
            self._on_event(name, b"\n".join(data), now)


async def open_stream(
    endpoint: Endpoint, path: str, token: str, on_event: EventHandler, timeout: float = 30.0
) -> SseProtocol:
    """Subscribe and return once the server has sent the first bytes of the stream."""
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: SseProtocol(on_event), endpoint.host, endpoint.port), timeout
    )
    assert protocol.transport is not None
    protocol.transport.write(
        encode_request("GET", path, endpoint, {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
    )
    try:
        await asyncio.wait_for(asyncio.shield(protocol.connected), timeout)
    except BaseException:
        protocol.transport.close()
        raise
    return protocol
