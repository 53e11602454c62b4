"""Request and response bodies of the command API (msgspec; they also make the OpenAPI schema).

Fields are typed but not constrained here: the domain checks every rule and reports every
broken one, field by field.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from app.domain.model import DESCRIPTION_MAX, MAX_COMMAND_QUANTITY, NAME_MAX, REASON_MAX

Sku = Annotated[str, msgspec.Meta(description="1-64 characters of A-Z a-z 0-9 . _ -", examples=["TSHIRT-RED-M"])]
Name = Annotated[str, msgspec.Meta(description=f"1-{NAME_MAX} characters")]
Description = Annotated[str, msgspec.Meta(description=f"0-{DESCRIPTION_MAX} characters")]
Threshold = Annotated[int, msgspec.Meta(description="low stock at or below this many available; null = default")]
LocationCode = Annotated[str, msgspec.Meta(description="a configured location code; the default location if absent")]


class CreateItem(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    name: Name
    description: Description | None = None
    quantity: Annotated[int, msgspec.Meta(description=f"initial stock, 0-{MAX_COMMAND_QUANTITY}")] = 0
    location: LocationCode | None = None
    low_stock_threshold: Threshold | None = None


class UpdateItem(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Description | None = None
    low_stock_threshold: Threshold | None = None


class AdjustStock(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(description="signed change, non-zero; negative removes stock")]
    location: LocationCode | None = None
    reason: Annotated[str, msgspec.Meta(description=f"why, up to {REASON_MAX} characters")] | None = None


class MoveStock(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Annotated[int, msgspec.Meta(description=f"units, 1-{MAX_COMMAND_QUANTITY}")]
    location: LocationCode | None = None


class CommandAccepted(msgspec.Struct):
    command_id: str
    item_id: str
    status: str
    status_url: str


class CommandStatusBody(msgspec.Struct, omit_defaults=True):
    command_id: str
    status: Annotated[str, msgspec.Meta(description="pending, applied or rejected")]
    item_id: str
    submitted_at: str
    reason: str | None = None
    version: int | None = None
    processed_at: str | None = None


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class ErrorBody(msgspec.Struct):
    """The one error shape of every role."""

    error: Annotated[str, msgspec.Meta(description="machine-readable code, e.g. ValidationError")]
    message: Annotated[str, msgspec.Meta(description="human text")]
    details: list[FieldProblem] | dict[str, Any] | None = None
