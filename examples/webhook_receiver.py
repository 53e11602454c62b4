"""A webhook receiver for the inventory's outbound webhooks, with the standard library only.

It checks every delivery the way a real receiver should:

1. the signature: ``Inventory-Webhook-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
   the HMAC-SHA256, under the endpoint's secret, of ``"<t>.<raw body>"`` (the raw bytes, before
   any JSON parsing);
2. the timestamp: within ``--tolerance`` seconds of now, so a captured delivery cannot be
   replayed later;
3. the delivery id (``Inventory-Webhook-Id``, also the body's ``id``): deliveries come at least
   once, so one seen before is acknowledged again and not processed twice.

Run it (the secret is the one the Webhooks page or ``POST /api/v1/webhooks`` showed once)::

    python examples/webhook_receiver.py --port 9000 --secret whsec_... --record deliveries.jsonl

and register ``http://<this host>:9000/`` as an endpoint. ``--status 500`` or ``--delay 30``
make it answer like a broken or slow receiver, to watch retries and dead letters.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1024 * 1024


def verify(secret: str, header: str, body: bytes, *, now: float, tolerance: float) -> bool:
    """True when ``header`` signs ``body`` under ``secret``, timestamped within ``tolerance``."""
    timestamp = None
    candidates = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


@dataclass
class Receiver:
    """What the server saw. ``status`` and ``delay`` may be changed while it runs."""

    secret: str
    tolerance: float = 300.0
    status: int = 200
    delay: float = 0.0
    record_path: str | None = None
    # Each delivery processed once, in arrival order: (delivery id, parsed body).
    deliveries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Every request with a valid signature, repeats included (delivery ids).
    arrivals: list[str] = field(default_factory=list)
    rejected: int = 0
    duplicates: int = 0
    # Requests being answered right now (a --delay keeps them here).
    in_progress: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self) -> set[str]:
        with self.lock:
            return {delivery_id for delivery_id, _ in self.deliveries}

    def handle(self, headers: Any, body: bytes) -> int:
        with self.lock:
            self.in_progress += 1
        try:
            return self._handle(headers, body)
        finally:
            with self.lock:
                self.in_progress -= 1

    def _handle(self, headers: Any, body: bytes) -> int:
        if self.delay:
            time.sleep(self.delay)
        signature = headers.get("Inventory-Webhook-Signature", "")
        if not verify(self.secret, signature, body, now=time.time(), tolerance=self.tolerance):
            with self.lock:
                self.rejected += 1
            return 401
        delivery_id = headers.get("Inventory-Webhook-Id", "")
        with self.lock:
            self.arrivals.append(delivery_id)
        if self.status >= 300:
            return self.status  # pretend to be broken: the sender retries
        event = json.loads(body)
        with self.lock:
            if delivery_id in {d for d, _ in self.deliveries}:
                self.duplicates += 1  # at least once: acknowledge, do not process again
                return 200
            self.deliveries.append((delivery_id, event))
            if self.record_path:
                with open(self.record_path, "a", encoding="utf-8") as out:
                    out.write(json.dumps(event) + "\n")
        print(f"{event['type']} {delivery_id}", flush=True)
        return 200


def make_server(receiver: Receiver, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_response(413)
                self.end_headers()
                return
            body = self.rfile.read(length)
            try:
                status = receiver.handle(self.headers, body)
            except (ValueError, KeyError):
                status = 400
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting (a --delay longer than its timeout)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # The sender opens several connections at once: the default listen backlog (5) drops
        # the others' first packet, and each of those waits a second before trying again.
        request_queue_size = 128
        daemon_threads = True

    return Server((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"), help="or WEBHOOK_SECRET")
    parser.add_argument("--tolerance", type=float, default=300.0, help="seconds a signature stays valid")
    parser.add_argument("--record", help="append each new delivery's body to this JSON-lines file")
    parser.add_argument("--status", type=int, default=200, help="answer this status (500, 410...) to try failures")
    parser.add_argument("--delay", type=float, default=0.0, help="wait this many seconds before answering")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or WEBHOOK_SECRET) is required")
    receiver = Receiver(args.secret, args.tolerance, args.status, args.delay, args.record)
    server = make_server(receiver, args.host, args.port)
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
