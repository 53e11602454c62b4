"""Where the templates and static files are: next to the code in a checkout, or in the working
directory (the container image puts them there), or wherever INVENTORY_WEB_ROOT says."""

from __future__ import annotations

import os
from pathlib import Path


def web_root() -> Path:
    candidates = [
        Path(os.environ["INVENTORY_WEB_ROOT"]) if os.environ.get("INVENTORY_WEB_ROOT") else None,
        Path(__file__).resolve().parents[2],
        Path.cwd(),
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / "templates").is_dir() and (candidate / "static").is_dir():
            return candidate
    raise RuntimeError("templates/ and static/ not found; set INVENTORY_WEB_ROOT to the folder that holds them")


TEMPLATES = web_root() / "templates"
STATIC = web_root() / "static"
