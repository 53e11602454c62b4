"""The command API over HTTP (role all, in-process, real SQLite files, embedded log)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.auth.tokens import TokenService
from tests.conftest import running_app
from tests.support.app import JWT_SECRET, base_env, item_body, login
from tests.support.events import query
from tests.support.waiting import eventually

ITEMS = "/api/v1/inventory/items"


@dataclass
class Api:
    client: httpx.AsyncClient
    as_user: dict[str, dict[str, str]]
    data_dir: Path

    def headers(self, user: str = "admin", **extra: str) -> dict[str, str]:
        return {**self.as_user[user], **extra}

    async def create(self, quantity: int = 10, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            ITEMS, json=item_body(quantity=quantity, **fields), headers=self.headers(Prefer="wait=10")
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def events_in_log(self) -> int:
        return int(
            query(
                self.data_dir / "eventlog.db",
                "SELECT COUNT(*) FROM records WHERE topic LIKE 'inventory.items' OR topic = 'inventory.stock'",
            )[0][0]
        )


async def _api(env: dict[str, str], data_dir: Path, role: str = "all") -> AsyncIterator[Api]:
    async with running_app(env, role) as (client, _):  # type: ignore[arg-type]
        users = {name: await login(client, name) for name in ("admin", "manager", "clerk", "viewer")}
        yield Api(client, users, data_dir)


@pytest.fixture
async def api(data_dir: Path) -> AsyncIterator[Api]:
    async for value in _api(base_env(data_dir), data_dir):
        yield value


def assert_error_shape(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == error and body["message"]
    return dict(body)


def fields(body: dict[str, Any]) -> set[str]:
    return {detail["field"] for detail in body["details"]}


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("malformed json", b'{"sku": "A",', "body"),
    ("not an object", b"[1, 2]", "body"),
    ("wrong type", {"sku": 12, "name": "x"}, "sku"),
    ("missing field", {"name": "x"}, "sku"),
    ("unknown field", {"sku": "A", "name": "x", "colour": "red"}, "colour"),
    ("negative quantity", {"sku": "A", "name": "x", "quantity": -1}, "quantity"),
    ("huge quantity", {"sku": "A", "name": "x", "quantity": 10**30}, "quantity"),
    ("overlong name", {"sku": "A", "name": "n" * 201}, "name"),
    ("overlong sku", {"sku": "S" * 65, "name": "x"}, "sku"),
    ("bad sku characters", {"sku": "a b/c", "name": "x"}, "sku"),
    ("unknown location", {"sku": "A", "name": "x", "location": "MARS"}, "location"),
    ("float quantity", {"sku": "A", "name": "x", "quantity": 1.5}, "quantity"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_create_bodies_are_400_with_the_field_named(api: Api, case: str, body: Any, field: str) -> None:
    content = body if isinstance(body, bytes) else None
    response = await api.client.post(
        ITEMS,
        content=content,
        json=None if content is not None else body,
        headers=api.headers(**{"Content-Type": "application/json"}),
    )
    details = assert_error_shape(response, 400, "ValidationError")
    assert field in fields(details), details
    assert api.events_in_log() == 0  # nothing was published


async def test_every_broken_rule_is_reported_at_once(api: Api) -> None:
    response = await api.client.post(
        ITEMS, json={"sku": "bad sku", "name": "", "quantity": -5, "location": "MARS"}, headers=api.headers()
    )
    assert fields(assert_error_shape(response, 400, "ValidationError")) == {"sku", "name", "quantity", "location"}


@pytest.mark.parametrize("quantity", [0, -3, 1_000_000_001])
async def test_reserve_quantities_out_of_range_are_400(api: Api, quantity: int) -> None:
    item = await api.create()
    response = await api.client.post(
        f"{ITEMS}/{item['id']}/reserve", json={"quantity": quantity}, headers=api.headers()
    )
    assert fields(assert_error_shape(response, 400, "ValidationError")) == {"quantity"}


async def test_an_adjustment_of_zero_is_400(api: Api) -> None:
    item = await api.create()
    response = await api.client.post(f"{ITEMS}/{item['id']}/adjust", json={"quantity": 0}, headers=api.headers())
    assert fields(assert_error_shape(response, 400, "ValidationError")) == {"quantity"}


async def test_an_invalid_uuid_is_400(api: Api) -> None:
    response = await api.client.post(f"{ITEMS}/12345/reserve", json={"quantity": 1}, headers=api.headers())
    assert fields(assert_error_shape(response, 400, "ValidationError")) == {"item_id"}


async def test_the_wrong_content_type_is_415(api: Api) -> None:
    response = await api.client.post(
        ITEMS, content=b"sku=A&name=x", headers=api.headers(**{"Content-Type": "application/x-www-form-urlencoded"})
    )
    assert_error_shape(response, 415, "UnsupportedMediaType")


async def test_an_oversized_body_is_413(api: Api) -> None:
    response = await api.client.post(ITEMS, json=item_body(description="d" * 200_000), headers=api.headers())
    assert_error_shape(response, 413, "PayloadTooLarge")
    assert api.events_in_log() == 0


async def test_a_create_answers_202_with_a_status_resource(api: Api) -> None:
    response = await api.client.post(ITEMS, json=item_body(quantity=3), headers=api.headers())
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"command_id", "item_id", "status", "status_url"} and body["status"] == "pending"
    assert response.headers["Location"] == body["status_url"] == f"/api/v1/commands/{body['command_id']}"

    async def applied() -> dict[str, Any] | None:
        status = (await api.client.get(body["status_url"], headers=api.headers())).json()
        return status if status["status"] == "applied" else None

    status = await eventually(applied)
    assert status["item_id"] == body["item_id"] and status["version"] == 1
    assert status["submitted_at"] and status["processed_at"]


async def test_prefer_wait_answers_with_the_outcome(api: Api) -> None:
    item = await api.create(quantity=5)
    assert item["quantity"] == 5 and item["version"] == 1
    ok = await api.client.post(
        f"{ITEMS}/{item['id']}/reserve", json={"quantity": 2}, headers=api.headers(Prefer="wait=10")
    )
    assert ok.status_code == 200 and ok.headers["Preference-Applied"] == "wait=10"
    assert ok.json()["reserved"] == 2 and ok.json()["available"] == 3
    refused = await api.client.post(
        f"{ITEMS}/{item['id']}/reserve", json={"quantity": 4}, headers=api.headers(Prefer="wait=10")
    )
    body = assert_error_shape(refused, 409, "CommandRejected")
    assert body["details"]["reason"] == "insufficient_stock"


async def test_a_stale_if_match_is_a_version_conflict(api: Api) -> None:
    item = await api.create(quantity=5)
    stale = await api.client.post(
        f"{ITEMS}/{item['id']}/reserve",
        json={"quantity": 1},
        headers=api.headers(Prefer="wait=10", **{"If-Match": '"7"'}),
    )
    assert assert_error_shape(stale, 409, "CommandRejected")["details"]["reason"] == "version_conflict"
    fresh = await api.client.post(
        f"{ITEMS}/{item['id']}/reserve",
        json={"quantity": 1},
        headers=api.headers(Prefer="wait=10", **{"If-Match": "1"}),
    )
    assert fresh.status_code == 200


async def test_unknown_items_are_404_and_taken_skus_409_without_a_round_trip(api: Api) -> None:
    item = await api.create(sku="TAKEN-1")
    missing = await api.client.post(f"{ITEMS}/{uuid.uuid4()}/reserve", json={"quantity": 1}, headers=api.headers())
    assert assert_error_shape(missing, 404, "NotFound")["details"]["reason"] == "unknown_item"
    taken = await api.client.post(ITEMS, json=item_body(sku="TAKEN-1"), headers=api.headers())
    assert assert_error_shape(taken, 409, "Conflict")["details"]["reason"] == "duplicate_sku"
    deleted = await api.client.delete(f"{ITEMS}/{item['id']}", headers=api.headers(Prefer="wait=10"))
    assert deleted.status_code == 200
    gone = await api.client.post(f"{ITEMS}/{item['id']}/reserve", json={"quantity": 1}, headers=api.headers())
    assert gone.status_code == 404
    again = await api.client.post(ITEMS, json=item_body(sku="TAKEN-1"), headers=api.headers(Prefer="wait=10"))
    assert again.status_code == 201  # a deleted item frees its SKU


async def test_an_item_whose_create_is_pending_is_never_a_false_404(data_dir: Path) -> None:
    # Role command alone: nothing applies the create, so it stays pending.
    async for api in _api(base_env(data_dir), data_dir, role="command"):
        created = await api.client.post(ITEMS, json=item_body(sku="PEND-1", quantity=5), headers=api.headers())
        assert created.status_code == 202
        item_id = created.json()["item_id"]
        reserve = await api.client.post(f"{ITEMS}/{item_id}/reserve", json={"quantity": 1}, headers=api.headers())
        assert reserve.status_code == 202
        duplicate = await api.client.post(ITEMS, json=item_body(sku="PEND-1"), headers=api.headers())
        assert duplicate.status_code == 409
        status = await api.client.get(created.json()["status_url"], headers=api.headers())
        assert status.json()["status"] == "pending"


async def test_the_same_idempotency_key_twice_applies_once_and_answers_the_same(api: Api) -> None:
    headers = api.headers(**{"Idempotency-Key": "order-1001-line-1"})
    body = item_body(sku="IDEM-1", quantity=4)
    first = await api.client.post(ITEMS, json=body, headers=headers)
    second = await api.client.post(ITEMS, json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.content == second.content
    assert api.events_in_log() == 1
    reused = await api.client.post(ITEMS, json=item_body(sku="IDEM-2"), headers=headers)
    assert_error_shape(reused, 422, "IdempotencyKeyReused")


async def test_a_repeated_request_id_is_replayed_for_the_same_user_only(api: Api) -> None:
    item = await api.create(quantity=10)
    path = f"{ITEMS}/{item['id']}/reserve"
    first = await api.client.post(
        path, json={"quantity": 1}, headers=api.headers("clerk", **{"X-Request-ID": "pos-77"})
    )
    again = await api.client.post(
        path, json={"quantity": 1}, headers=api.headers("clerk", **{"X-Request-ID": "pos-77"})
    )
    other = await api.client.post(
        path, json={"quantity": 1}, headers=api.headers("admin", **{"X-Request-ID": "pos-77"})
    )
    assert first.content == again.content
    assert other.json()["command_id"] != first.json()["command_id"]
    assert again.headers["X-Request-ID"] == "pos-77"


async def test_writes_need_a_token_and_the_right_role(api: Api) -> None:
    item = await api.create()
    reserve = f"{ITEMS}/{item['id']}/reserve"
    assert_error_shape(await api.client.post(reserve, json={"quantity": 1}), 401, "Unauthorized")
    assert_error_shape(
        await api.client.post(reserve, json={"quantity": 1}, headers=api.headers("viewer")), 403, "Forbidden"
    )
    assert_error_shape(await api.client.post(ITEMS, json=item_body(), headers=api.headers("clerk")), 403, "Forbidden")
    assert (await api.client.post(reserve, json={"quantity": 1}, headers=api.headers("clerk"))).status_code == 202
    assert (await api.client.post(ITEMS, json=item_body(), headers=api.headers("manager"))).status_code == 202


async def test_expired_and_tampered_tokens_are_refused(api: Api) -> None:
    from app.auth.roles import Role
    from app.auth.tokens import Principal

    tokens = TokenService(JWT_SECRET, ttl_seconds=60)
    expired = tokens.issue(Principal("admin", Role.ADMIN), now=1_000_000).token
    forged = jwt.encode(
        {"sub": "admin", "role": "admin", "iat": 1, "exp": 2**40, "iss": "inventory"}, "wrong-secret" * 4
    )
    for token in (expired, forged, "garbage"):
        response = await api.client.post(ITEMS, json=item_body(), headers={"Authorization": f"Bearer {token}"})
        assert_error_shape(response, 401, "Unauthorized")


async def test_login_with_a_wrong_password_is_401(api: Api) -> None:
    response = await api.client.post("/api/v1/auth/login", json={"username": "admin", "password": "nope-nope"})
    assert_error_shape(response, 401, "Unauthorized")


async def test_the_request_id_is_echoed_even_on_404(api: Api) -> None:
    response = await api.client.get("/no/such/path", headers={"X-Request-ID": "trace-123"})
    assert response.status_code == 404 and response.headers["X-Request-ID"] == "trace-123"
    generated = await api.client.get("/api/v1/health")
    assert len(generated.headers["X-Request-ID"]) == 32


async def test_openapi_and_swagger_ui_are_served(api: Api) -> None:
    schema = (await api.client.get("/schema/openapi.json")).json()
    assert "/api/v1/inventory/items/{item_id}/reserve" in schema["paths"]
    assert "/api/v1/commands/{command_id}" in schema["paths"]
    assert (await api.client.get("/schema/swagger")).status_code == 200


async def test_a_low_stock_threshold_is_kept_and_can_be_changed(api: Api) -> None:
    item = await api.create(quantity=3, low_stock_threshold=4)
    assert item["low_stock_threshold"] == 4
    updated = await api.client.put(
        f"{ITEMS}/{item['id']}", json={"name": "Renamed"}, headers=api.headers(Prefer="wait=10")
    )
    assert updated.status_code == 200
    assert updated.json()["low_stock_threshold"] is None and updated.json()["name"] == "Renamed"
    bad = await api.client.post(ITEMS, json=item_body(low_stock_threshold=-1), headers=api.headers())
    assert fields(assert_error_shape(bad, 400, "ValidationError")) == {"low_stock_threshold"}
