"""Read a server-sent event stream line by line in a thread, to watch it while the test acts."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import httpx
from httpx_sse import connect_sse


class StreamReader:
    """The lines of one stream as they come; None once the server closed it."""

    def __init__(self, url: str, cookies: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(url, cookies or {}, headers or {}), daemon=True)
        self._thread.start()

    def _read(self, url: str, cookies: dict[str, str], headers: dict[str, str]) -> None:
        try:
            timeout = httpx.Timeout(60, read=60)
            with httpx.stream("GET", url, cookies=cookies, headers=headers, timeout=timeout) as response:
                self.lines.put(f"status {response.status_code}")
                for line in response.iter_lines():
                    self.lines.put(line)
        finally:
            self.lines.put(None)

    def next_line(self, deadline: float) -> str | None:
        return self.lines.get(timeout=max(0.1, deadline - time.monotonic()))

    def wait_for(self, wanted: str, deadline: float) -> None:
        while (line := self.next_line(deadline)) != wanted:
            if line is None:
                raise AssertionError(f"the stream closed before {wanted!r}")

    def rest(self, deadline: float) -> list[str]:
        """Every line until the server closes the stream."""
        seen: list[str] = []
        while (line := self.next_line(deadline)) is not None:
            seen.append(line)
        self._thread.join(timeout=10)
        return seen


class SseCollector:
    """Reads an SSE stream in a thread, reconnecting with Last-Event-ID like a browser does."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.events: list[tuple[str, str, dict[str, Any]]] = []  # (event, id, data)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SseCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def last_id(self) -> str | None:
        return self.events[-1][1] if self.events else None

    def _run(self) -> None:
        while not self._stop.is_set():
            headers = dict(self.headers)
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                with (
                    httpx.Client(timeout=httpx.Timeout(5.0, read=60.0)) as client,
                    connect_sse(client, "GET", self.url, headers=headers) as source,
                ):
                    self.connections += 1
                    for sse in source.iter_sse():
                        if self._stop.is_set():
                            return
                        if sse.event in ("item", "outcome", "reset"):
                            self.events.append((sse.event, sse.id, json.loads(sse.data)))
            except (httpx.HTTPError, OSError):
                time.sleep(0.2)

    def items(self, item_id: str) -> list[dict[str, Any]]:
        return [data for event, _, data in self.events if event == "item" and data["item_id"] == item_id]
