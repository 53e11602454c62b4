"""One Jinja environment for pages and for the partials pushed over the live stream, so a row
looks the same whichever way it reached the browser."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.clock import utc_now
from app.domain.events import EventType
from app.domain.rules import stock_state
from app.web.labels import PLACELESS, reason_label, state_label, verb
from app.web.paths import TEMPLATES


def _signed(value: int) -> str:
    return f"{value:+d}" if value else "0"


def _difference(value: int) -> str:
    """A count's difference from what was expected: +3, -2, ±0."""
    return f"{value:+d}" if value else "±0"


def _moment(text: str | None) -> str:
    """An RFC 3339 UTC time as people read it: 2026-12-03 13:38:00 (UTC, as the data keeps it)."""
    if not text:
        return ""
    return f"{text[:10]} {text[11:19]}" if len(text) >= 19 else text


def _short(record_id: str | None) -> str:
    return (record_id or "")[:8]


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["signed"] = _signed
    env.filters["difference"] = _difference
    env.filters["moment"] = _moment
    env.filters["short"] = _short
    env.filters["verb"] = verb
    env.filters["reason_label"] = reason_label
    env.filters["state_label"] = state_label
    # Low and out of stock are decided by the domain's rule, not by each template.
    env.globals["stock_state"] = stock_state
    env.globals["EventType"] = EventType
    env.globals["PLACELESS"] = PLACELESS
    # The server's time beside a countdown, so the browser counts against the server's clock.
    env.globals["now_text"] = utc_now
    return env


class Renderer:
    def __init__(self, env: Environment, globals_: dict[str, Any]) -> None:
        self.env = env
        env.globals.update(globals_)

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)
