"""The README's webhook receiver (examples/webhook_receiver.py) run in a thread of the test, so
the tests check deliveries with the very code users are shown."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tests.support.services import REPO

SECRET = "test-webhook-secret-0123456789"


def receiver_module() -> ModuleType:
    name = "webhook_receiver"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / "webhook_receiver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class RunningReceiver:
    receiver: Any  # examples/webhook_receiver.py Receiver
    server: Any
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.receiver.lock:
            return [body for _, body in self.receiver.deliveries if kind is None or body["type"] == kind]

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiver(secret: str = SECRET, *, port: int = 0, start: bool = True, **options: Any) -> Iterator[RunningReceiver]:
    module = receiver_module()
    state = module.Receiver(secret, **options)
    running = RunningReceiver(state, module.make_server(state, "127.0.0.1", port))
    if start:
        running.start()
    try:
        yield running
    finally:
        if running.thread is not None:
            running.stop()
        else:
            running.server.server_close()
