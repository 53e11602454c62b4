"""Bounds on what the HTTP server reads for one request, enforced while it reads.

uvicorn's httptools protocol has no limit of its own: it reads every header of a request before
the application sees any of them, and waits for a slow client forever. This subclass counts
while it parses and gives up early:

* the request line (414), the header bytes and the number of headers (431), and the body (413)
  are refused as soon as a limit is passed, before the rest is read;
* a request whose head is not complete within ``header_timeout`` seconds of its first byte (or
  of the connection, for one that sends nothing) gets a 408 and is closed, however slowly it
  trickles;
* a body from which nothing arrives for ``body_timeout`` seconds gets a 408 and is closed
  (unless the application is not reading it yet: then the client is not the one waiting).

Once a request has been read completely, no timer applies: a long answer (a live event stream)
is never cut. Idle keep-alive connections are closed by uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.settings import Settings

# Where a connection is in reading its current request.
IDLE = 0  # between requests (or before the first one): no byte of a request yet
HEAD = 1  # the request line and headers are arriving
BODY = 2  # the headers are in, the body is arriving
DONE = 3  # the request has been read; the answer may take as long as it likes

# After a refusal the connection is half-closed and what the client still sends is read and
# dropped for a moment (up to this many bytes), so that its TCP stack delivers the answer
# instead of a reset (closing a socket with unread data makes the kernel send RST).
LINGER_SECONDS = 1.0
LINGER_BYTES = 1024 * 1024
# Routes that take a file (CSV imports) up to INVENTORY_IMPORT_MAX_BYTES, plus the multipart
# form around it, instead of the JSON body limit.
UPLOAD_PATHS = ("/api/v1/imports", "/ui/imports")
UPLOAD_ENVELOPE_BYTES = 64 * 1024


@dataclass(frozen=True)
class RequestLimits:
    max_request_line_bytes: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_upload_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        return cls(
            max_request_line_bytes=settings.max_request_line_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            max_body_bytes=settings.max_body_bytes,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_upload_bytes=settings.import_max_bytes + UPLOAD_ENVELOPE_BYTES,
        )

    @property
    def head_bytes(self) -> int:
        """What the request line and headers together may take on the wire (with their separators)."""
        return self.max_request_line_bytes + self.max_header_bytes + 4 * self.max_headers


class Refused(Exception):
    """Raised from a parser callback to stop reading a request that broke a limit."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _answer(status: int, error: str, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = b'{"error":"%s","message":"%s","details":null}' % (error.encode(), message.encode())
    lines = [STATUS_LINE[status]]
    for name, value in default_headers:
        lines += [name, b": ", value, b"\r\n"]
    lines += [
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"x-request-id: " + uuid.uuid4().hex.encode() + b"\r\n",
        b"x-content-type-options: nosniff\r\n",
        b"connection: close\r\n\r\n",
        body,
    ]
    return b"".join(lines)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; use ``protocol_for(limits)``."""

    limits = RequestLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stage = IDLE
        self._since = 0.0  # when the current stage began (for a body: when its last bytes came)
        self._head_bytes = 0
        self._header_bytes = 0
        self._body_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._discarded: int | None = None  # bytes dropped after a refusal (None: no refusal)

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._since = self.loop.time()
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # As uvicorn's own, plus the refusals raised by the callbacks below.
        if self._discarded is not None:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__ or exc.__cause__
            if isinstance(cause, Refused):
                self._refuse(cause)
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._stage <= HEAD:
            # The parser keeps a header it has not finished in memory: count the bytes of an
            # unfinished head as they arrive, not only the headers it has completed.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.head_bytes:
                self._refuse(Refused(431, "HeadersTooLarge", "the request headers are too large"))

    # --- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._stage = HEAD
        self._since = self.loop.time()
        self._header_bytes = 0
        self._body_bytes = 0
        if self._timer is None:
            self._arm(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_request_line_bytes:
            raise Refused(414, "URITooLong", "the request line is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > self.limits.max_header_bytes or len(self.headers) >= self.limits.max_headers:
            raise Refused(431, "HeadersTooLarge", "the request headers are too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stage = BODY
        self._since = self.loop.time()
        self._head_bytes = 0
        super().on_headers_complete()
        if self._timer is None:
            self._arm(self.limits.body_timeout)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:
            if not self._uploading():
                raise Refused(413, "PayloadTooLarge", "the request body is too large")
            if self._body_bytes > self.limits.max_upload_bytes:
                largest = self.limits.max_upload_bytes - UPLOAD_ENVELOPE_BYTES
                raise Refused(413, "PayloadTooLarge", f"the file is too large: at most {largest} bytes may be uploaded")
        self._since = self.loop.time()
        super().on_body(body)

    def _uploading(self) -> bool:
        """A file upload, held to its own limit (the file itself is checked again by the route)."""
        return self.url.split(b"?", 1)[0].decode("latin-1") in UPLOAD_PATHS

    def on_message_complete(self) -> None:
        self._stage = DONE
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._stage == DONE and not self.pipeline and (self.cycle is None or self.cycle.response_complete):
            # Waiting for the next request: a client that trickles bytes without starting one is
            # held to the header timeout (uvicorn's keep-alive timer stops at the first byte).
            self._stage = IDLE
            self._since = self.loop.time()
            if self._timer is None:
                self._arm(self.limits.header_timeout)

    # --- timeouts and refusals --------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._check_deadline)

    def _check_deadline(self) -> None:
        """One timer per connection, re-armed for the current stage's deadline only while a
        request is being read (so a busy keep-alive connection creates one about every
        ``header_timeout`` seconds, not one per request)."""
        self._timer = None
        if self.transport.is_closing() or self._stage == DONE or self._discarded is not None:
            return
        now = self.loop.time()
        if self._stage == BODY:
            if self.flow.read_paused:
                self._since = now  # the application has not read what came: not the client's delay
            timeout = self.limits.body_timeout
        else:
            timeout = self.limits.header_timeout
        deadline = self._since + timeout
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._check_deadline)
            return
        if self._stage == IDLE:
            self.transport.close()
            return
        what = "headers" if self._stage == HEAD else "body"
        self._refuse(Refused(408, "RequestTimeout", f"the request {what} did not arrive in time"))

    def _refuse(self, refusal: Refused) -> None:
        """Answer a request that broke a limit, if no answer is under way, and close."""
        if self.transport.is_closing() or self._discarded is not None:
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._stage == BODY and answering and not self.cycle.response_started:
            # The application waits for this body: it will see the client go away instead.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            answering = False
        self.logger.info("request refused: %s %s", refusal.status, refusal.message)
        if answering:
            self.transport.close()
            return
        self.transport.write(_answer(refusal.status, refusal.error, refusal.message, self.server_state.default_headers))
        self._discarded = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def protocol_for(limits: RequestLimits) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to give uvicorn (``uvicorn.Config(http=...)``), with these limits."""
    return type("ConfiguredHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits})


def server_options(settings: Settings) -> dict[str, Any]:
    """What ``inventory serve`` gives uvicorn besides the address: the bounded protocol, and
    X-Forwarded-* believed only from the proxies named in INVENTORY_TRUSTED_PROXIES."""
    trusted = list(settings.trusted_proxies)
    return {
        "http": protocol_for(RequestLimits.from_settings(settings)),
        "proxy_headers": bool(trusted),
        # uvicorn falls back to 127.0.0.1 (or $FORWARDED_ALLOW_IPS) when this is None.
        "forwarded_allow_ips": trusted or [],
    }
