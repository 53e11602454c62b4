"""Item commands: create, edit, delete. Each is one declaration: its event data, its request body,
the rules of each field, the decision it calls and how people and the API document see it."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.domain import model
from app.domain.catalogue.fields import Location, Sku, Text, Threshold, Units
from app.domain.catalogue.spec import CommandSpec, DecisionContext, no_levels
from app.domain.events import Description, Event, EventType, Name
from app.domain.events import Sku as SkuText
from app.domain.events import Threshold as ThresholdValue
from app.domain.model import DESCRIPTION_MAX, MAX_COMMAND_QUANTITY, NAME_MAX, Decision, Item
from app.domain.roles import Role
from app.domain.rules import SKU_RULE_TEXT

# --- shared body field descriptions (the OpenAPI document shows them) ---------------------

SkuField = Annotated[str, msgspec.Meta(description=SKU_RULE_TEXT, examples=["TSHIRT-RED-M"])]
NameField = Annotated[str, msgspec.Meta(description=f"1-{NAME_MAX} characters")]
DescriptionField = Annotated[str, msgspec.Meta(description=f"0-{DESCRIPTION_MAX} characters")]
ThresholdField = Annotated[int, msgspec.Meta(description="low stock at or below this many available; null = default")]
LocationField = Annotated[str, msgspec.Meta(description="a configured location code; the default location if absent")]


# --- create --------------------------------------------------------------------------------


class ItemCreatedData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    sku: SkuText
    name: Name
    description: Description = ""
    quantity: Annotated[int, msgspec.Meta(ge=0, le=MAX_COMMAND_QUANTITY)] = 0
    low_stock_threshold: ThresholdValue | None = None


class CreateItem(msgspec.Struct, forbid_unknown_fields=True):
    sku: SkuField
    name: NameField
    description: DescriptionField | None = None
    quantity: Annotated[int, msgspec.Meta(description=f"initial stock, 0-{MAX_COMMAND_QUANTITY}")] = 0
    location: LocationField | None = None
    low_stock_threshold: ThresholdField | None = None


def _create(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, ItemCreatedData)
    return model.create_item(
        existing=item,
        sku_owner=context.sku_owner(data.sku),
        item_id=event.item_id,
        sku=data.sku,
        name=data.name,
        description=data.description,
        quantity=data.quantity,
        location=event.location,
        now=context.now,
        low_stock_threshold=data.low_stock_threshold,
    )


CREATE = CommandSpec(
    name="create",
    event_type=EventType.ITEM_CREATED,
    data=ItemCreatedData,
    body=CreateItem,
    fields={
        "sku": Sku(),
        "name": Text(NAME_MAX, required=True),
        "description": Text(DESCRIPTION_MAX),
        "quantity": Units(minimum=0, default=0),
        "location": Location(),
        "low_stock_threshold": Threshold(),
    },
    decide=_create,
    role=Role.MANAGER,
    verb="Create",
    summary="Create an item",
    description="A new item with its initial stock at one location. The server chooses the item's id.",
    example={"sku": "TSHIRT-RED-M", "name": "T-shirt red M", "quantity": 40, "location": "MAIN"},
    creates_item=True,
    touches=no_levels,
)


# --- edit ----------------------------------------------------------------------------------


class ItemUpdatedData(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Name
    description: Description = ""
    low_stock_threshold: ThresholdValue | None = None


class UpdateItem(msgspec.Struct, forbid_unknown_fields=True):
    name: NameField
    description: DescriptionField | None = None
    low_stock_threshold: ThresholdField | None = None


def _update(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    data = event.data
    assert isinstance(data, ItemUpdatedData)
    return model.update_item(
        item,
        name=data.name,
        description=data.description,
        expected_version=event.expected_version,
        now=context.now,
        low_stock_threshold=data.low_stock_threshold,
    )


UPDATE = CommandSpec(
    name="edit",
    event_type=EventType.ITEM_UPDATED,
    data=ItemUpdatedData,
    body=UpdateItem,
    fields={
        "name": Text(NAME_MAX, required=True),
        "description": Text(DESCRIPTION_MAX),
        "low_stock_threshold": Threshold(),
    },
    decide=_update,
    role=Role.MANAGER,
    verb="Edit",
    summary="Rename or describe an item",
    description="Replaces the name, description and low-stock threshold. Send If-Match to refuse a stale edit.",
    example={"name": "T-shirt red M (organic)", "low_stock_threshold": 8},
    method="PUT",
    path="/{item_id:str}",
    touches=no_levels,
)


# --- delete --------------------------------------------------------------------------------


class ItemDeletedData(msgspec.Struct, forbid_unknown_fields=True):
    pass


def _delete(item: Item | None, event: Event, context: DecisionContext) -> Decision:
    return model.delete_item(item, expected_version=event.expected_version, now=context.now)


DELETE = CommandSpec(
    name="delete",
    event_type=EventType.ITEM_DELETED,
    data=ItemDeletedData,
    body=None,
    fields={},
    decide=_delete,
    role=Role.MANAGER,
    verb="Delete",
    summary="Delete an item",
    description="The item and its levels leave every list; its history stays. Send If-Match to refuse a stale delete.",
    method="DELETE",
    path="/{item_id:str}",
    touches=no_levels,
)
