"""HTTP entrypoint of low stock across the chain: every level low or out, most urgent first,
with the store that has the most of the item to spare."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from app.auth.roles import Role
from app.domain.low_stock import LowStockRow
from app.http.auth import requires
from app.http.errors import ErrorBody
from app.queries.controllers import MAX_PAGE_SIZE, check_location
from app.queries.service import QueryService
from app.settings import Settings


class LowStockBody(msgspec.Struct):
    levels: list[LowStockRow]
    total: int
    page: int
    page_size: int
    total_pages: int


class LowStockController(Controller):
    path = "/api/v1/inventory/low-stock"
    tags = ["queries"]
    guards = [requires(Role.VIEWER)]

    @get(
        "/",
        summary="Levels low or out across the chain, most urgent first, with the best store to ask",
        description=(
            "One entry per item and location whose available stock is at or below its threshold (the item's, "
            "else the default): out of stock first, then low ones by how far below their threshold they are. "
            "best_location is the other location with the most available of the item (null when no other has "
            "any), best_available how many it has."
        ),
        responses={400: ResponseSpec(ErrorBody)},
    )
    async def low_stock(
        self,
        queries: NamedDependency[QueryService],
        settings: NamedDependency[Settings],
        location: Annotated[str | None, Parameter(description="only this location's levels")] = None,
        page: Annotated[int, Parameter(description="1-based; clamped")] = 1,
        page_size: Annotated[int, Parameter(description=f"1-{MAX_PAGE_SIZE}, clamped")] = 50,
    ) -> LowStockBody:
        code = check_location(location, settings)
        page, page_size = max(1, min(page, 100_000)), max(1, min(page_size, MAX_PAGE_SIZE))
        found = await queries.low_stock(
            locations=[code] if code else None,
            default_threshold=settings.low_stock_threshold,
            page=page,
            page_size=page_size,
        )
        return LowStockBody(found.rows, found.total, found.page, found.page_size, found.total_pages)
