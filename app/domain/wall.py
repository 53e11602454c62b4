"""The stock wall's rules: what a wall URL may ask for, and in which order its tiles come.

Pure: the options are parsed from the query string's values (already split by name) and the
locations the site knows; nothing here reads a request or the database. The SQL twin of
``tile_rank`` is app/reader.py:WALL_ORDER.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from app.domain.rules import (
    LOCATION_PATTERN,
    SKU_PATTERN,
    StockState,
    attention_rank,
    normalise_location,
    stock_state,
)

Show = Literal["attention", "all"]
Density = Literal["large", "normal", "compact"]

SHOWS: tuple[Show, ...] = ("all", "attention")
# Columns x rows of one screen. Sized for a 1920x1080 TV: at "normal" a tile is wide enough for a
# 14-character SKU (the demo's longest) in type of 40 px, readable from about 3 m; "compact" is for
# a screen seen from closer, "large" for one seen from further away.
DENSITIES: dict[Density, tuple[int, int]] = {"large": (4, 3), "normal": (5, 4), "compact": (8, 5)}
ROTATE_MIN, ROTATE_MAX, ROTATE_DEFAULT = 5, 3600, 15
# A regional wall, not the chain: beyond this many stores a tile per item and store is a report,
# not something to read on a TV (the low-stock page is for the chain).
MAX_LOCATIONS = 20
MAX_PAGE = 100_000


class WallOptionError(ValueError):
    """A wall URL asks for something the wall cannot show; the message says what and how to fix it."""


@dataclass(frozen=True)
class WallOptions:
    locations: tuple[str, ...]
    show: Show = "all"
    rotate: int = ROTATE_DEFAULT
    density: Density = "normal"
    page: int = 1
    # Only SKUs that start with this (any case): a wall for one department, e.g. "JNS-".
    sku: str = ""

    @property
    def columns(self) -> int:
        return DENSITIES[self.density][0]

    @property
    def rows(self) -> int:
        return DENSITIES[self.density][1]

    @property
    def page_size(self) -> int:
        return self.columns * self.rows

    @property
    def several(self) -> bool:
        """A regional wall: each tile says which store it is about."""
        return len(self.locations) > 1

    @property
    def attention_only(self) -> bool:
        return self.show == "attention"

    def query(self, *, page: int | None = None) -> str:
        """The options as a query string (the page only when asked), for the wall's own links:
        its tiles, its stream, the next page."""
        pairs: list[tuple[str, str | int]] = [("location", ",".join(self.locations))]
        pairs += [("show", self.show), ("rotate", self.rotate), ("density", self.density)]
        if self.sku:
            pairs.append(("sku", self.sku))
        if page is not None:
            pairs.append(("page", page))
        return urlencode(pairs)


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or []
    if len(values) > 1:
        raise WallOptionError(f"give {name} once (it was given {len(values)} times)")
    return values[0].strip() if values else None


def _number(raw: str | None, name: str, low: int, high: int, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise WallOptionError(f"{name} must be a whole number from {low} to {high} (got {raw[:20]!r})")
    value = int(raw[:12])
    if not low <= value <= high:
        raise WallOptionError(f"{name} must be from {low} to {high} (got {value})")
    return value


def _choice(raw: str | None, name: str, choices: Sequence[str], default: str) -> str:
    if raw is None or raw == "":
        return default
    value = raw.lower()
    if value not in choices:
        raise WallOptionError(f"{name} must be one of {', '.join(choices)} (got {raw[:20]!r})")
    return value


def _locations(raw: Sequence[str], known: Sequence[str], default: str) -> tuple[str, ...]:
    # location=A&location=B and location=A,B mean the same; the order given is the header's order.
    codes: list[str] = []
    for value in raw:
        for part in value.split(","):
            code = normalise_location(part)
            if code and code not in codes:
                codes.append(code)
    if not codes:
        return (default,)
    bad = [code for code in codes if not LOCATION_PATTERN.match(code) or code not in known]
    if bad:
        shown = ", ".join(code[:16] for code in bad[:5])
        raise WallOptionError(f"unknown location {shown}; this site has {', '.join(known)}")
    if len(codes) > MAX_LOCATIONS:
        raise WallOptionError(f"a wall shows at most {MAX_LOCATIONS} locations (got {len(codes)})")
    return tuple(codes)


def _sku_prefix(raw: str | None) -> str:
    if not raw:
        return ""
    if not SKU_PATTERN.match(raw):
        raise WallOptionError("sku must be the start of a SKU: 1-64 characters of A-Z a-z 0-9 . _ -")
    return raw


def parse_wall_options(
    params: Mapping[str, Sequence[str]], *, known: Sequence[str], default_location: str
) -> WallOptions:
    """The options of a wall URL, or WallOptionError saying what is wrong. Options it does not
    know are left alone (a link may carry more)."""
    return WallOptions(
        locations=_locations(params.get("location") or [], known, default_location),
        show=_choice(_one(params, "show"), "show", SHOWS, "all"),  # type: ignore[arg-type]
        rotate=_number(_one(params, "rotate"), "rotate", ROTATE_MIN, ROTATE_MAX, ROTATE_DEFAULT),
        density=_choice(_one(params, "density"), "density", tuple(DENSITIES), "normal"),  # type: ignore[arg-type]
        page=_number(_one(params, "page"), "page", 1, MAX_PAGE, 1),
        sku=_sku_prefix(_one(params, "sku")),
    )


def tile_rank(available: int, threshold: int | None, default_threshold: int) -> tuple[int, int]:
    """The urgency part of a tile's place: out first, then low by how far below the threshold
    (``attention_rank``); the rest all alike, so they keep a stable order by name while their
    stock moves."""
    group, gap = attention_rank(available, threshold, default_threshold)
    return (group, gap) if group < 2 else (group, 0)


def tile_key(
    available: int, threshold: int | None, default_threshold: int, name: str, sku: str, location: str
) -> tuple[int, int, str, str, str]:
    """A tile's place on the wall, smallest first: urgency, then name (case-insensitive), SKU and
    location, so every tile has one place."""
    return (*tile_rank(available, threshold, default_threshold), name.lower(), sku, location)


def shown_on(options: WallOptions, available: int, threshold: int | None, default_threshold: int) -> bool:
    """Whether a level belongs on this wall at all: everything, or only what needs attention."""
    return not options.attention_only or stock_state(available, threshold, default_threshold) != StockState.OK


def sku_on(options: WallOptions, sku: str) -> bool:
    """Whether an item is one of this wall's SKUs (all of them, or those with its prefix)."""
    return sku.lower().startswith(options.sku.lower())
