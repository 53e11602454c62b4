"""HTTP entrypoints of the query service."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter

from app.auth.roles import Role
from app.domain import rules
from app.domain.catalogue import FieldError, InvalidCommand, check_item_id
from app.domain.records import HistoryEntry, ItemView, LevelView, StockView
from app.http.auth import requires
from app.http.errors import ApiError, ErrorBody
from app.queries.service import ItemNotFound, QueryService
from app.reader import SORTS
from app.settings import Settings

MAX_PAGE_SIZE = 100
MAX_QUERY_LENGTH = 100
MAX_LOCATIONS = 50
LOCATIONS_PARAMETER = Parameter(
    description=(
        "only the levels at these locations: repeat the parameter (location=S001&location=S002) or "
        f"separate codes with commas as on the stream (location=S001,S002), at most {MAX_LOCATIONS}; "
        "without it, every level. The totals stay the chain's in any case."
    ),
)
NOT_FOUND = {
    404: ResponseSpec(ErrorBody, description="No such item (or deleted)"),
    400: ResponseSpec(ErrorBody),
}


class ItemPageBody(msgspec.Struct):
    items: list[ItemView]
    total: int
    page: int
    page_size: int
    total_pages: int


class LevelPageBody(msgspec.Struct):
    item_id: str
    levels: list[LevelView]
    total: int
    page: int
    page_size: int
    total_pages: int


class HistoryBody(msgspec.Struct):
    item_id: str
    entries: list[HistoryEntry]
    next_before: int | None


def _not_found(what: str) -> ApiError:
    return ApiError(404, "no such item", details={"item": what})


def check_sku(sku: str) -> str:
    if not rules.SKU_PATTERN.match(sku):
        raise InvalidCommand([FieldError("sku", f"must be {rules.SKU_RULE_TEXT}")])
    return sku


def check_location(location: str | None, settings: NamedDependency[Settings]) -> str | None:
    code = rules.normalise_location(location)
    if not code:
        return None
    if code not in settings.locations:
        raise InvalidCommand([FieldError("location", f"unknown location; known: {', '.join(settings.locations)}")])
    return code


def check_locations(locations: list[str] | None, settings: Settings) -> list[str] | None:
    """The locations asked for, normalised, known and without repeats (None: every level)."""
    parts = [part for location in locations or () for part in location.split(",") if part.strip()]
    if not parts:
        return None
    if len(parts) > MAX_LOCATIONS:
        raise InvalidCommand([FieldError("location", f"at most {MAX_LOCATIONS} locations")])
    codes = [check_location(part, settings) for part in parts]
    return list(dict.fromkeys(code for code in codes if code))


class ItemQueryController(Controller):
    path = "/api/v1/inventory/items"
    tags = ["queries"]
    guards = [requires(Role.VIEWER)]

    @get(
        "",
        summary="List items (search, location filter, sort, pages)",
        responses={400: ResponseSpec(ErrorBody)},
    )
    async def list_items(
        self,
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        page: Annotated[int, Parameter(description="1-based; out-of-range values are clamped")] = 1,
        page_size: Annotated[int, Parameter(description=f"1-{MAX_PAGE_SIZE}, clamped")] = 10,
        q: Annotated[str | None, Parameter(description="matches sku or name (substring)")] = None,
        location: Annotated[
            str | None,
            Parameter(
                description="one store's list: only items stocked there, totals narrowed to it and just that "
                "level in locations; without it the chain's list, chain totals and no levels (locations empty)"
            ),
        ] = None,
        sort: Annotated[str, Parameter(description=f"one of {', '.join(SORTS)}")] = "sku",
    ) -> ItemPageBody:
        if sort not in SORTS:
            raise InvalidCommand([FieldError("sort", f"must be one of {', '.join(SORTS)}")])
        if q is not None and len(q) > MAX_QUERY_LENGTH:
            raise InvalidCommand([FieldError("q", f"must be at most {MAX_QUERY_LENGTH} characters")])
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        page = max(1, min(page, 1_000_000))
        result = await queries.list_items(
            page=page,
            page_size=page_size,
            q=(q or "").strip() or None,
            location=check_location(location, settings),
            sort=sort,
        )
        return ItemPageBody(
            items=result.items,
            total=result.total,
            page=result.page,
            page_size=result.page_size,
            total_pages=result.total_pages,
        )

    @get(
        "/{item_id:str}",
        summary="One item: its chain totals and its levels (every one, or those at location=)",
        responses=NOT_FOUND,
    )
    async def get_item(
        self,
        item_id: FromPath[str],
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        location: Annotated[list[str] | None, LOCATIONS_PARAMETER] = None,
    ) -> ItemView:
        item_id = check_item_id(item_id)
        try:
            return await queries.item(item_id, check_locations(location, settings))
        except ItemNotFound:
            raise _not_found(item_id) from None

    @get("/sku/{sku:str}", summary="One item by SKU (levels as for one item)", responses=NOT_FOUND)
    async def get_item_by_sku(
        self,
        sku: FromPath[str],
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        location: Annotated[list[str] | None, LOCATIONS_PARAMETER] = None,
    ) -> ItemView:
        try:
            return await queries.item_by_sku(check_sku(sku), check_locations(location, settings))
        except ItemNotFound:
            raise _not_found(sku) from None

    @get(
        "/{item_id:str}/stock",
        summary="Stock of one item: chain totals and levels (every one, or those at location=)",
        responses=NOT_FOUND,
    )
    async def get_stock(
        self,
        item_id: FromPath[str],
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        location: Annotated[list[str] | None, LOCATIONS_PARAMETER] = None,
    ) -> StockView:
        item_id = check_item_id(item_id)
        try:
            return queries.stock_view(await queries.item(item_id, check_locations(location, settings)))
        except ItemNotFound:
            raise _not_found(item_id) from None

    @get("/sku/{sku:str}/stock", summary="Stock of one item by SKU", responses=NOT_FOUND)
    async def get_stock_by_sku(
        self,
        sku: FromPath[str],
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        location: Annotated[list[str] | None, LOCATIONS_PARAMETER] = None,
    ) -> StockView:
        try:
            return queries.stock_view(await queries.item_by_sku(check_sku(sku), check_locations(location, settings)))
        except ItemNotFound:
            raise _not_found(sku) from None

    @get(
        "/{item_id:str}/levels",
        summary="An item's levels, one page at a time, by location",
        description="Every level of a live item in location order; the item's totals are on GET /items/{item_id}.",
        responses=NOT_FOUND,
    )
    async def get_levels(
        self,
        item_id: FromPath[str],
        queries: NamedDependency[QueryService],
        page: Annotated[int, Parameter(description="1-based; out-of-range values are clamped")] = 1,
        page_size: Annotated[int, Parameter(description=f"1-{MAX_PAGE_SIZE}, clamped")] = 50,
    ) -> LevelPageBody:
        item_id = check_item_id(item_id)
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        page = max(1, min(page, 1_000_000))
        try:
            result = await queries.level_page(item_id, page=page, page_size=page_size)
        except ItemNotFound:
            raise _not_found(item_id) from None
        return LevelPageBody(
            item_id=item_id,
            levels=result.levels,
            total=result.total,
            page=result.page,
            page_size=result.page_size,
            total_pages=result.total_pages,
        )

    @get("/{item_id:str}/history", summary="Applied changes of an item, newest first", responses=NOT_FOUND)
    async def get_history(
        self,
        item_id: FromPath[str],
        queries: NamedDependency[QueryService],
        limit: Annotated[int, Parameter(description="1-200, clamped")] = 50,
        before: Annotated[int | None, Parameter(description="entries older than this id (paging)")] = None,
    ) -> HistoryBody:
        item_id = check_item_id(item_id)
        limit = max(1, min(limit, 200))
        before = None if before is None else max(0, min(before, 2**62))
        try:
            entries = await queries.history(item_id, limit=limit, before=before)
        except ItemNotFound:
            raise _not_found(item_id) from None
        return HistoryBody(
            item_id=item_id,
            entries=entries,
            next_before=entries[-1].id if len(entries) == limit else None,
        )
