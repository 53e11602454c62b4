#!/usr/bin/env python3
"""Wait until a Kafka broker answers a Metadata request with at least one broker.

Standard library only, so it runs before any virtualenv exists:

    python3 kafka/check_ready.py 127.0.0.1:9092 --timeout 60

Each attempt opens a fresh TCP connection and speaks the Kafka wire protocol:

1. ApiVersions v0 - every broker accepts it; the answer tells which
   Metadata versions this broker serves.
2. Metadata v4..v8 - the newest non-flexible version the broker serves.
   (Kafka 4.0 dropped Metadata v0-v3, KIP-896; v9+ use the "flexible"
   encoding, which this probe has no need for.)  The request asks for no
   topics, only the broker list, and the probe succeeds once that list is
   not empty.

Exit status: 0 ready, 1 timed out, 2 the process given by --pid has exited.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time

API_METADATA = 3
API_VERSIONS = 18
METADATA_MIN, METADATA_MAX = 4, 8  # non-flexible versions Kafka 4.x still serves
CLIENT_ID = b"inventory-kafka-ready"


class NotReady(Exception):
    """The broker answered, or failed to, in a way that means 'not yet'."""


class Reader:
    """Sequential big-endian decoder over one response body."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def integer(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def int16(self) -> int:
        return self.integer(">h")

    def int32(self) -> int:
        return self.integer(">i")

    def string(self) -> str | None:
        """STRING / NULLABLE_STRING: int16 length (-1 = null), then UTF-8 bytes."""
        length = self.int16()
        if length < 0:
            return None
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8")


def recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise NotReady("connection closed by broker")
        buf += chunk
    return bytes(buf)


def call(sock: socket.socket, api_key: int, version: int, corr_id: int, body: bytes) -> Reader:
    """Send one request with header v1 and return a reader over the response body.

    Request header v1: api_key int16, api_version int16, correlation_id int32,
    client_id nullable string. Non-flexible responses (and every ApiVersions
    response) use header v0: just the correlation_id.
    """
    header = struct.pack(">hhih", api_key, version, corr_id, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    reader = Reader(recv_exact(sock, size))
    if reader.int32() != corr_id:
        raise NotReady("correlation id mismatch")
    return reader


def metadata_version(sock: socket.socket) -> int:
    """ApiVersions v0 -> the Metadata version to use."""
    r = call(sock, API_VERSIONS, 0, 1, b"")
    error = r.int16()
    if error != 0:
        raise NotReady(f"ApiVersions error code {error}")
    for _ in range(r.int32()):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        if key == API_METADATA:
            version = min(hi, METADATA_MAX)
            if version < max(lo, METADATA_MIN):
                raise SystemExit(
                    f"broker serves Metadata v{lo}-v{hi}, this probe needs v{METADATA_MIN}-v{METADATA_MAX}"
                )
            return version
    raise NotReady("broker does not list the Metadata API yet")


def probe(host: str, port: int, timeout: float) -> str:
    """One attempt; returns a summary line or raises NotReady / OSError."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        version = metadata_version(sock)

        # Metadata request body: topics = empty array (no topics, brokers only),
        # allow_auto_topic_creation = false, and from v8 the two
        # include_*_authorized_operations flags = false.
        body = struct.pack(">ib", 0, 0)
        if version >= 8:
            body += struct.pack(">bb", 0, 0)
        r = call(sock, API_METADATA, version, 2, body)

        # Response v4-v8: throttle_time_ms, brokers[node_id, host, port, rack],
        # cluster_id, controller_id, topics[] (empty), ...
        r.int32()  # throttle_time_ms
        brokers = []
        for _ in range(r.int32()):
            node_id, b_host, b_port, _rack = r.int32(), r.string(), r.int32(), r.string()
            brokers.append(f"{node_id}@{b_host}:{b_port}")
        cluster_id = r.string()
        if not brokers:
            raise NotReady("metadata lists no brokers yet")
        return f"ready: cluster_id={cluster_id} brokers={','.join(brokers)} (Metadata v{version})"


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        pass  # no procfs (e.g. macOS): fall back to signal 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap", nargs="?", default="127.0.0.1:9092", help="HOST:PORT (%(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to keep trying (%(default)s)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between attempts (%(default)s)")
    parser.add_argument("--pid", type=int, help="give up early if this process exits")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args()

    host, _, port = args.bootstrap.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    deadline = time.monotonic() + args.timeout
    last_error = "no attempt made"

    while True:
        remaining = deadline - time.monotonic()
        try:
            summary = probe(host, int(port), timeout=max(0.5, min(5.0, remaining)))
        except (OSError, NotReady, struct.error) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if not args.quiet:
                print(summary)
            return 0

        if args.pid is not None and not pid_alive(args.pid):
            print(f"process {args.pid} exited before {args.bootstrap} was ready ({last_error})", file=sys.stderr)
            return 2
        if time.monotonic() + args.interval > deadline:
            print(f"{args.bootstrap} not ready after {args.timeout:g}s ({last_error})", file=sys.stderr)
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
