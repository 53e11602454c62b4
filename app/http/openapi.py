"""Make the OpenAPI document say exactly what the API accepts.

Request bodies are decoded with types only and checked by the domain (so a form can show
every broken rule at once); Litestar therefore cannot see the rules. They are written into the
generated document here, from the same constants the domain uses, so a schema-valid request is
always accepted and a client generated from the document never sends what we refuse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Parameter, Reference, Schema

from app.domain import audit
from app.domain.alerts import AlertKind
from app.domain.catalogue import PUBLIC_COMMANDS, Places, body_types
from app.domain.model import ReservationState, TransferState
from app.domain.reservations import REFERENCE_MAX
from app.domain.rules import SKU_REGEX, UUID_REGEX
from app.reader import SORTS
from app.settings import Settings

IF_MATCH = r'^(\*|(W/)?"?[0-9]{1,18}"?)$'
STREAM = (
    "events `item` (an item's new state, or deleted), `outcome` (a command applied or rejected) and `reset` "
    "(reload: missed changes are gone); data is JSON, the event id is the commit sequence"
)


def _body_rules(settings: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    """Each command body's field rules, as the catalogue declares them."""
    places = Places(settings.locations, settings.default_location)
    rules: dict[str, dict[str, dict[str, Any]]] = {}
    for spec in PUBLIC_COMMANDS:
        if spec.body is not None:
            rules[spec.body.__name__] = {name: _keywords(rule.schema(places)) for name, rule in spec.fields.items()}
    return rules


# JSON Schema keywords whose attribute on Litestar's Schema has another name.
_ATTRIBUTES = {"if": "schema_if", "not": "schema_not", "allOf": "all_of", "oneOf": "one_of"}


def _schema(fragment: Mapping[str, Any]) -> Schema:
    """A JSON Schema fragment of the catalogue (plain data: the domain knows no Litestar) as a Schema."""
    values: dict[str, Any] = {}
    for key, value in fragment.items():
        if key == "properties":
            value = {name: _schema(sub) for name, sub in value.items()}
        elif key in ("if", "then", "not"):
            value = _schema(value)
        elif key in ("allOf", "oneOf"):
            value = [_schema(sub) for sub in value]
        values[_ATTRIBUTES.get(key, key)] = value
    return Schema(**values)


def _keywords(rule: dict[str, Any]) -> dict[str, Any]:
    if "not_const" in rule:
        rule = {**rule, "schema_not": Schema(const=rule["not_const"])}
        del rule["not_const"]
    return rule


def _parameter_rules(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "item_id": {"pattern": UUID_REGEX},
        "command_id": {"pattern": UUID_REGEX},
        "sku": {"pattern": SKU_REGEX},
        "If-Match": {"pattern": IF_MATCH},
        "Idempotency-Key": {"pattern": r"^[\x21-\x7e]{1,255}$"},
        "q": {"max_length": 100},
        "reference": {"max_length": REFERENCE_MAX},
        "location": {"enum": list(settings.locations)},
        "sort": {"enum": list(SORTS)},
        # The audit log's filters (app/domain/audit.py:parse_filters accepts exactly these).
        "actor": {"max_length": audit.ACTOR_MAX},
        "item": {"max_length": audit.ITEM_MAX},
        "reason": {"pattern": r"^[A-Za-z][A-Za-z0-9_]{0,39}$"},
        "event_type": {"enum": sorted(audit.EVENT_TYPES)},
        "kind": {"enum": list(audit.KINDS)},
        "cursor": {"pattern": audit.CURSOR_PATTERN},
        # The CSV exports' layouts (app/queries/exports.py).
        "layout": {"enum": ["long", "wide", "counts"]},
    }


def _constrain(schema: Schema | Reference | None, rule: dict[str, Any]) -> None:
    if not isinstance(schema, Schema):
        return
    if schema.one_of:  # an optional field: the rule is for the non-null branch
        for branch in schema.one_of:
            if isinstance(branch, Schema) and branch.type != "null":
                _constrain(branch, rule)
        return
    for attribute, value in rule.items():
        setattr(schema, attribute, value)


def document_rules(app: Litestar, settings: Settings, closed_bodies: tuple[type, ...] = ()) -> None:
    """Write the catalogue's field rules into the document; every command body (and each of
    ``closed_bodies``) refuses unknown fields."""
    document = app.openapi_schema
    schemas = document.components.schemas or {}
    for component, fields in _body_rules(settings).items():
        schema = schemas.get(component)
        if schema is None or not schema.properties:
            continue
        for field, rule in fields.items():
            _constrain(schema.properties.get(field), rule)
    for spec in PUBLIC_COMMANDS:
        if spec.body is not None and spec.cross_rules and (schema := schemas.get(spec.body.__name__)) is not None:
            schema.all_of = [_schema(rule) for rule in spec.cross_rules]
    for struct in (*body_types(), *closed_bodies):
        if (schema := schemas.get(struct.__name__)) is not None:
            schema.additional_properties = False
    parameter_rules = _parameter_rules(settings)
    error = OpenAPIResponse(
        description="Invalid input: one error shape, with per-field details",
        content={"application/json": OpenAPIMediaType(schema=Reference(ref="#/components/schemas/ErrorBody"))},
    )
    for path, path_item in (document.paths or {}).items():
        for method in ("get", "put", "post", "delete", "head", "patch"):
            operation: Operation | None = getattr(path_item, method, None)
            if operation is None:
                continue
            for parameter in operation.parameters or []:
                if not isinstance(parameter, Parameter):
                    continue
                _not_null(parameter)  # an absent header or query parameter is absent, never "null"
                parameter_rule = parameter_rules.get(parameter.name)
                if parameter.name == "state":
                    states = TransferState if path.endswith(("/transfers", "/transfers.csv")) else ReservationState
                    parameter_rule = {"enum": [state.value for state in states]}
                    if path.endswith("/deliveries"):  # a webhook's deliveries (app/webhooks/controller.py)
                        parameter_rule = {"enum": ["pending", "delivered", "dead"]}
                if path.endswith("/alerts") and parameter.name == "kind":  # stock alerts (app/queries/alerts.py)
                    parameter_rule = {"enum": [kind.value for kind in AlertKind]}
                if path.endswith("/stream") and parameter.name == "location":
                    # The stream takes a comma-separated list of codes (app/queries/stream.py).
                    codes = "|".join(re.escape(code) for code in settings.locations)
                    parameter_rule = {"pattern": f"^({codes})(,({codes}))*$"}
                if parameter_rule is not None:
                    _constrain(parameter.schema, parameter_rule)
            if operation.responses is not None:
                # Litestar documents its own validation shape; ours is ErrorBody.
                operation.responses["400"] = error
                if path.endswith("/stream") and "200" in operation.responses:
                    operation.responses["200"] = OpenAPIResponse(
                        description="Server-sent events",
                        content={"text/event-stream": OpenAPIMediaType(schema=Schema(description=STREAM))},
                    )


def _not_null(parameter: Parameter) -> None:
    schema = parameter.schema
    if isinstance(schema, Schema) and schema.one_of:
        branches = [b for b in schema.one_of if not (isinstance(b, Schema) and b.type == "null")]
        if len(branches) == 1 and isinstance(branches[0], Schema):
            branches[0].description = branches[0].description or schema.description
            parameter.schema = branches[0]
