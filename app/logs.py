"""Structured JSON logs on stderr, one object per line."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

from app.clock import utc_now

EXTRA_FIELDS = ("request_id", "command_id", "item_id", "role")
# Set per request (and per command) so every line logged while handling it carries the ids.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
command_id_var: ContextVar[str | None] = ContextVar("command_id", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self._role = role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_now(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "role": self._role,
            "message": record.getMessage(),
        }
        context = {"request_id": request_id_var.get(), "command_id": command_id_var.get()}
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, role: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka reports every reconnect attempt at ERROR; our own warnings say it once.
    logging.getLogger("aiokafka").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
