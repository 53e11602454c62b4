"""One Jinja environment for pages and for the partials pushed over the live stream, so a row
looks the same whichever way it reached the browser."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from app.clock import utc_now
from app.domain.events import EventType
from app.domain.rules import stock_state
from app.domain.wall import tile_rank
from app.web.labels import PLACELESS, reason_label, state_label, verb
from app.web.paths import TEMPLATES

# Entries per page of an item's history.
HISTORY_PAGE = 30


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


def _time_tag(text: str | None, css_class: str = "") -> Markup:
    """A time as a <time> element with its RFC 3339 value and the UTC text; static/app.js shows it
    in the viewer's time zone and keeps the UTC text as its title (so without scripts, or in a
    test, it still reads right)."""
    if not text:
        return Markup("")
    if css_class:
        return Markup('<time datetime="{}" class="{}">{} UTC</time>').format(text, css_class, _moment(text))
    return Markup('<time datetime="{}">{} UTC</time>').format(text, _moment(text))


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
    env.filters["time_tag"] = _time_tag
    env.filters["short"] = _short
    env.filters["verb"] = verb
    env.filters["reason_label"] = reason_label
    env.filters["state_label"] = state_label
    # Low and out of stock are decided by the domain's rule, not by each template.
    env.globals["stock_state"] = stock_state
    env.globals["tile_rank"] = tile_rank
    env.globals["EventType"] = EventType
    # The item page's history page size (app/web/pages.py reads one more to know of older ones).
    env.globals["HISTORY_PAGE"] = HISTORY_PAGE
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
