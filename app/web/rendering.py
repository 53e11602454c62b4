"""One Jinja environment for pages and for the partials pushed over the live stream, so a row
looks the same whichever way it reached the browser."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.domain.rules import stock_state
from app.web.paths import TEMPLATES


def _signed(value: int) -> str:
    return f"{value:+d}" if value else "0"


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["signed"] = _signed
    # Low and out of stock are decided by the domain's rule, not by each template.
    env.globals["stock_state"] = stock_state
    return env


class Renderer:
    def __init__(self, env: Environment, globals_: dict[str, Any]) -> None:
        self.env = env
        env.globals.update(globals_)

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)
