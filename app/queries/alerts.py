"""HTTP entrypoint of the stock alerts: what crossed into low, into out, or back in stock, newest
first, as the listener decided it (app/domain/alerts.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from app.auth.roles import Role
from app.domain.alerts import AlertKind
from app.domain.catalogue import FieldError, InvalidCommand
from app.http.auth import requires
from app.http.errors import ErrorBody
from app.queries.controllers import LOCATIONS_PARAMETER, MAX_PAGE_SIZE, check_locations
from app.reader import AlertEntry, InventoryReader
from app.settings import Settings

KINDS = tuple(kind.value for kind in AlertKind)
# Ids are SQLite rowids: a cursor past this is no alert's.
MAX_ID = 2**62


class AlertPageBody(msgspec.Struct):
    alerts: list[AlertEntry]
    # Pass as ``before`` for the next (older) page; null on the last one.
    next_before: int | None


def check_kind(kind: str | None) -> str | None:
    value = (kind or "").strip().lower()
    if not value:
        return None
    if value not in KINDS:
        raise InvalidCommand([FieldError("kind", f"must be one of {', '.join(KINDS)}")])
    return value


def clamp_before(before: int | None) -> int | None:
    """A cursor out of range is clamped, as the history's (0: nothing is older)."""
    return None if before is None else max(0, min(before, MAX_ID))


class AlertController(Controller):
    path = "/api/v1/inventory/alerts"
    tags = ["queries"]
    guards = [requires(Role.VIEWER)]

    @get(
        "",
        summary="Stock alerts, newest first (at some locations, of one kind)",
        description=(
            "Each alert is a level that crossed a line, decided once by the listener with hysteresis: "
            "low_stock (available fell to the threshold or below), out_of_stock (nothing available), "
            "back_in_stock (available again, above a margin). threshold is the one in force then (the "
            "item's, else the default); name is the item's now. Pages by keyset: pass next_before as before."
        ),
        responses={400: ResponseSpec(ErrorBody)},
    )
    async def list_alerts(
        self,
        reader: NamedDependency[InventoryReader],
        settings: NamedDependency[Settings],
        location: Annotated[list[str] | None, LOCATIONS_PARAMETER] = None,
        kind: Annotated[str | None, Parameter(description=f"one of {', '.join(KINDS)}")] = None,
        before: Annotated[
            int | None, Parameter(description="only alerts older than this id (next_before); clamped")
        ] = None,
        limit: Annotated[int, Parameter(description=f"1-{MAX_PAGE_SIZE}, clamped")] = 50,
    ) -> AlertPageBody:
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        alerts = await reader.alerts(
            locations=check_locations(location, settings),
            kind=check_kind(kind),
            before=clamp_before(before),
            limit=limit,
        )
        return AlertPageBody(alerts, alerts[-1].id if len(alerts) == limit else None)
