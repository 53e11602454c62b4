"""Response bodies of the command API (msgspec; they also make the OpenAPI schema). Request
bodies are declared with their commands in app/domain/catalogue."""

from __future__ import annotations

import msgspec


class CommandAccepted(msgspec.Struct):
    command_id: str
    item_id: str
    status: str
    status_url: str
