"""Read a server-sent event stream line by line in a thread, to watch it while the test acts."""

from __future__ import annotations

import queue
import threading
import time

import httpx


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
