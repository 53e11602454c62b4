"""The catalogue is the one declaration of each command: routes, forms, the OpenAPI document, the
decoder and the labels all come from it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from app.application import create_app
from app.bootstrap import build_container
from app.domain.catalogue import BY_EVENT_TYPE, COMMANDS, PUBLIC_COMMANDS, decode_event
from app.domain.events import Event, EventType, encode_event
from app.web.labels import command_label
from tests.support.app import base_env, settings_for

ITEMS = "/api/v1/inventory/items"


@pytest.fixture
def document(tmp_path: Path) -> dict[str, object]:
    settings = settings_for(base_env(tmp_path) | {"INVENTORY_LOCATIONS": "MAIN,S001"})
    app = create_app(build_container(settings, "all"))
    return msgspec.json.decode(msgspec.json.encode(app.openapi_schema.to_schema()))


def test_every_event_type_is_one_command_with_one_name() -> None:
    assert {spec.event_type for spec in COMMANDS} == set(EventType)
    assert len({spec.name for spec in COMMANDS}) == len(COMMANDS)


@pytest.mark.parametrize("spec", PUBLIC_COMMANDS, ids=lambda spec: spec.name)
def test_each_command_has_its_documented_json_route(spec, document) -> None:  # type: ignore[no-untyped-def]
    path = (ITEMS + spec.json_path).replace(":str", "")
    operation = document["paths"][path][spec.method.lower()]
    assert operation["summary"] == spec.summary
    assert operation["operationId"] == f"command_{spec.name}"
    if spec.body is not None:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["allOf"] == [{"$ref": f"#/components/schemas/{spec.body.__name__}"}]
        assert schema["examples"] == [dict(spec.example or {})] or spec.example is None
        body = document["components"]["schemas"][spec.body.__name__]
        assert body["additionalProperties"] is False
        assert set(body["properties"]) == set(spec.fields)


def test_field_rules_are_written_into_the_document(document) -> None:  # type: ignore[no-untyped-def]
    schemas = document["components"]["schemas"]
    adjust_quantity = schemas["AdjustStock"]["properties"]["quantity"]
    assert adjust_quantity["not"] == {"const": 0}
    location = schemas["MoveStock"]["properties"]["location"]
    branch = next(b for b in location["oneOf"] if b.get("type") != "null")
    assert branch["enum"] == ["MAIN", "S001"]
    assert schemas["CreateItem"]["properties"]["sku"]["pattern"] == r"^[A-Za-z0-9._-]{1,64}$"


def test_each_command_has_a_form_route(tmp_path: Path) -> None:
    settings = settings_for(base_env(tmp_path))
    app = create_app(build_container(settings, "all"))
    paths = {route.path for route in app.routes}
    for spec in PUBLIC_COMMANDS:
        assert "/ui" + spec.form_path.replace(":str", "") in paths or "/ui" + spec.form_path in paths


def test_an_internal_command_has_no_route_form_or_operation(document, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    internal = [spec for spec in COMMANDS if spec.internal]
    assert [spec.name for spec in internal] == ["expire-reservation"]
    app = create_app(build_container(settings_for(base_env(tmp_path)), "all"))
    paths = {route.path.replace(":str", "") for route in app.routes}
    for spec in internal:
        assert spec not in PUBLIC_COMMANDS
        assert (ITEMS + spec.json_path).replace(":str", "") not in document["paths"]
        assert (ITEMS + spec.json_path).replace(":str", "") not in paths
        assert "/ui" + spec.form_path.replace(":str", "") not in paths


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda spec: spec.name)
def test_the_decoder_reads_back_what_each_command_writes(spec) -> None:  # type: ignore[no-untyped-def]
    example = dict(spec.example or {})
    example.pop("location", None)
    values = {"sku": "A-1", "name": "n"} if spec.creates_item else {}
    data = spec.data(**{k: v for k, v in (values | example).items() if k in spec.data.__struct_fields__})
    event = Event(
        event_id="6f9619ff-8b86-d011-b42d-00c04fc964ff", event_type=spec.event_type,
        item_id="6f9619ff-8b86-d011-b42d-00c04fc964fe", location="MAIN",
        command_id="6f9619ff-8b86-d011-b42d-00c04fc964fd", request_id="r", actor="a",
        occurred_at="2026-01-01T00:00:00.000Z", data=data,
    )  # fmt: skip
    assert decode_event(encode_event(event)) == event
    assert BY_EVENT_TYPE[event.event_type] is spec


def test_labels_use_each_command_verb() -> None:
    assert command_label(EventType.STOCK_ADJUSTED.value, "A-1", -2) == "Adjust -2 · A-1"
    assert command_label(EventType.STOCK_RESERVED.value, "A-1", 2) == "Reserve 2 · A-1"
    assert command_label(EventType.ITEM_CREATED.value, "A-1") == "Create · A-1"
