"""HTTP entrypoints for a store's day: transfers and reservations, listed with filters."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter, QueryParameter

from app.auth.roles import Role
from app.domain.catalogue import FieldError, InvalidCommand, check_item_id
from app.domain.model import ReservationState, TransferState
from app.domain.records import ReservationView, TransferView
from app.domain.reservations import REFERENCE_MAX
from app.http.auth import requires
from app.http.errors import ErrorBody
from app.queries.controllers import MAX_PAGE_SIZE, check_location
from app.queries.service import QueryService, RecordPage
from app.settings import Settings

TRANSFER_STATES = tuple(state.value for state in TransferState)
RESERVATION_STATES = tuple(state.value for state in ReservationState)


class TransferPageBody(msgspec.Struct):
    transfers: list[TransferView]
    total: int
    page: int
    page_size: int


class ReservationPageBody(msgspec.Struct):
    reservations: list[ReservationView]
    total: int
    page: int
    page_size: int


def _state(value: str | None, states: tuple[str, ...]) -> str | None:
    if value is None or not value.strip():
        return None
    if value.strip().lower() not in states:
        raise InvalidCommand([FieldError("state", f"must be one of {', '.join(states)}")])
    return value.strip().lower()


def _item(value: str | None) -> str | None:
    return check_item_id(value) if value else None


def _paging(page: int, page_size: int) -> tuple[int, int]:
    return max(1, min(page, 1_000_000)), max(1, min(page_size, MAX_PAGE_SIZE))


class StoreDayController(Controller):
    path = "/api/v1/inventory"
    tags = ["queries"]
    guards = [requires(Role.VIEWER)]

    @get(
        "/transfers",
        summary="Transfers, newest first (of an item, from or to a location, in a state)",
        responses={400: ResponseSpec(ErrorBody)},
    )
    async def list_transfers(
        self,
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        item_id: Annotated[str | None, Parameter(description="one item's transfers")] = None,
        location: Annotated[str | None, Parameter(description="transfers from or to this location")] = None,
        # "state" is a name Litestar keeps for itself: the parameter is called so, the argument not.
        in_state: Annotated[
            str | None, QueryParameter(name="state", description=f"one of {', '.join(TRANSFER_STATES)}")
        ] = None,
        page: Annotated[int, Parameter(description="1-based; clamped")] = 1,
        page_size: Annotated[int, Parameter(description=f"1-{MAX_PAGE_SIZE}, clamped")] = 50,
    ) -> TransferPageBody:
        page, page_size = _paging(page, page_size)
        found: RecordPage[TransferView] = await queries.transfers(
            item_id=_item(item_id),
            location=check_location(location, settings),
            state=_state(in_state, TRANSFER_STATES),
            page=page,
            page_size=page_size,
        )
        return TransferPageBody(found.rows, found.total, found.page, found.page_size)

    @get(
        "/reservations",
        summary="Reservations, newest first (of an item, at a location, for a reference, in a state)",
        responses={400: ResponseSpec(ErrorBody)},
    )
    async def list_reservations(
        self,
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        item_id: Annotated[str | None, Parameter(description="one item's reservations")] = None,
        location: Annotated[str | None, Parameter(description="reservations at this location")] = None,
        reference: Annotated[str | None, Parameter(description="an order or cart id")] = None,
        in_state: Annotated[
            str | None, QueryParameter(name="state", description=f"one of {', '.join(RESERVATION_STATES)}")
        ] = None,
        page: Annotated[int, Parameter(description="1-based; clamped")] = 1,
        page_size: Annotated[int, Parameter(description=f"1-{MAX_PAGE_SIZE}, clamped")] = 50,
    ) -> ReservationPageBody:
        if reference is not None and len(reference) > REFERENCE_MAX:
            raise InvalidCommand([FieldError("reference", f"must be at most {REFERENCE_MAX} characters")])
        page, page_size = _paging(page, page_size)
        found: RecordPage[ReservationView] = await queries.reservations(
            item_id=_item(item_id),
            location=check_location(location, settings),
            reference=(reference or "").strip() or None,
            state=_state(in_state, RESERVATION_STATES),
            page=page,
            page_size=page_size,
        )
        return ReservationPageBody(found.rows, found.total, found.page, found.page_size)
