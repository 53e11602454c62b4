"""The audit log through the real split stack (command, listener and query processes on Kafka and
Redis): what people did lands in the listener's SQLite file, and the query service lists it
filtered by user, item, location, reason and type, in keyset pages, and exports it as CSV with
formula cells escaped. Bad filters are a 400 in the one error shape.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.services import RedisServer
from tests.support.stack import Stack, split_stack

ITEMS = "/api/v1/inventory/items"
WAIT = {"Prefer": "wait=20"}
EVIL_NAME = "=cmd|' /C calc'!A0"


class AuditApi:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(timeout=60)
        self.tokens = {user: stack.token(user) for user in ("admin", "manager", "clerk", "viewer")}

    def create(self, sku: str, name: str, quantity: int, user: str = "manager") -> str:
        return str(self.stack.create_item(self.tokens[user], sku=sku, name=name, quantity=quantity)["id"])

    def adjust(self, item_id: str, quantity: int, user: str, **body: Any) -> httpx.Response:
        return self.client.post(
            f"{self.stack.command.url}{ITEMS}/{item_id}/adjust",
            json={"quantity": quantity, **body},
            headers={**self.tokens[user], **WAIT},
        )

    def audit(self, **params: Any) -> dict[str, Any]:
        response = self.client.get(f"{self.stack.query.url}/api/v1/audit", params=params, headers=self.tokens["viewer"])
        assert response.status_code == 200, response.text
        return dict(response.json())

    def every_page(self, **params: Any) -> tuple[list[dict[str, Any]], int]:
        entries: list[dict[str, Any]] = []
        pages = 0
        cursor: str | None = None
        while True:
            body = self.audit(**params, **({"cursor": cursor} if cursor else {}))
            entries += body["entries"]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                return entries, pages

    def csv(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"{self.stack.query.url}{path}", params=params, headers=self.tokens["viewer"])


@pytest.fixture(scope="module")
def audit(
    kafka_bootstrap: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuditApi]:
    root = tmp_path_factory.mktemp("audit")
    (root / "data").mkdir()
    with split_stack(kafka_bootstrap, redis_server.url, root / "data", root) as stack:
        api = AuditApi(stack)
        try:
            yield api
        finally:
            api.client.close()


def test_the_log_is_filtered_by_user_item_location_reason_and_type_and_names_items_by_sku(audit: AuditApi) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    mugs = audit.create(f"AUD-{tag}-MUG", "Mug, blue", 10)
    tees = audit.create(f"AUD-{tag}-TEE", "T-shirt, red", 10)
    assert audit.adjust(mugs, 5, "clerk", location="S001", reason="received").status_code == 200
    assert audit.adjust(mugs, -2, "clerk", location="S001", reason="damaged", note="dropped").status_code == 200
    assert audit.adjust(tees, -1, "manager", reason="theft").status_code == 200
    # Refused: more than there is. The log keeps who tried.
    assert audit.adjust(tees, -500, "clerk", reason="sold").status_code == 409

    mine, _ = audit.every_page(item=f"AUD-{tag}-MUG")
    assert [(e["kind"], e["actor"], e["event_type"].rsplit(".", 1)[-1], e.get("quantity_delta")) for e in mine] == [
        ("applied", "clerk", "adjusted", -2),
        ("applied", "clerk", "adjusted", 5),
        ("applied", "manager", "created", 10),
    ]
    assert {(e["sku"], e["name"]) for e in mine} == {(f"AUD-{tag}-MUG", "Mug, blue")}
    assert mine[0]["note"] == "dropped" and mine[0]["reason"] == "damaged" and mine[0]["location"] == "S001"
    assert mine[0]["quantity_after"] == 3
    # By id, the same entries.
    assert audit.every_page(item=mugs)[0] == mine

    by_clerk = audit.every_page(actor="clerk", item=f"AUD-{tag}-TEE")[0]
    assert [(e["kind"], e["reason"]) for e in by_clerk] == [("rejected", "insufficient_stock")]
    assert by_clerk[0]["sku"] == f"AUD-{tag}-TEE" and by_clerk[0]["message"]
    assert [e["actor"] for e in audit.every_page(actor="CLERK ", location="S001", item=mugs)[0]] == ["clerk"] * 2
    assert [e["item_id"] for e in audit.every_page(reason="theft", item=tees)[0]] == [tees]
    assert audit.every_page(reason="theft", item=mugs)[0] == []
    assert [e["kind"] for e in audit.every_page(kind="rejected", item=tees)[0]] == ["rejected"]
    assert len(audit.every_page(event_type="created", item=tees)[0]) == 1
    # A SKU nobody has: nothing, rather than everything.
    assert audit.audit(item=f"AUD-{tag}-NONE") == {"entries": [], "next_cursor": None}


def test_keyset_pages_cover_every_entry_once_newest_first(audit: AuditApi) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    item = audit.create(f"AUD-{tag}-PAGE", "Paged", 50)
    for n in range(1, 8):
        assert audit.adjust(item, -1, "clerk", reason="sold", note=f"n{n}").status_code == 200
        if n % 3 == 0:
            assert audit.adjust(item, -900, "clerk", reason="sold").status_code == 409
    entries, pages = audit.every_page(item=item, page_size=3)
    assert len(entries) == 1 + 7 + 2 and pages == 4
    assert [e.get("note") for e in entries if e["kind"] == "applied" and e["event_type"].endswith("adjusted")] == [
        f"n{n}" for n in range(7, 0, -1)
    ]
    moments = [e["at"] for e in entries]
    assert moments == sorted(moments, reverse=True)
    assert len({(e["kind"], e.get("id"), e["command_id"]) for e in entries}) == len(entries)


def test_the_csv_export_streams_every_match_with_formulas_escaped(audit: AuditApi) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    item = audit.create(f"AUD-{tag}-CSV", EVIL_NAME, 4)
    assert audit.adjust(item, -1, "clerk", reason="damaged", note="+SUM(A1:A9)").status_code == 200
    for path in ("/api/v1/audit.csv", "/events.csv"):
        response = audit.csv(path, item=f"AUD-{tag}-CSV")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert response.headers["content-disposition"].startswith("attachment; filename=")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [row["event_type"].rsplit(".", 1)[-1] for row in rows] == ["adjusted", "created"]
        assert {row["name"] for row in rows} == {"'" + EVIL_NAME}
        assert rows[0]["note"] == "'+SUM(A1:A9)"
        # Numbers stay numbers: a negative delta is not a formula.
        assert rows[0]["quantity_delta"] == "-1" and rows[0]["sku"] == f"AUD-{tag}-CSV"


def test_bad_filters_and_forged_cursors_are_refused_in_the_one_error_shape(audit: AuditApi) -> None:
    for params, field in (
        ({"location": "NOWHERE"}, "location"),
        ({"kind": "maybe"}, "kind"),
        ({"event_type": "exploded"}, "event_type"),
        ({"reason": "x y"}, "reason"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ):
        response = audit.client.get(
            f"{audit.stack.query.url}/api/v1/audit", params=params, headers=audit.tokens["viewer"]
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "ValidationError"
        assert [d["field"] for d in response.json()["details"]] == [field]
    assert audit.csv("/api/v1/audit.csv", location="NOWHERE").status_code == 400
    assert audit.client.get(f"{audit.stack.query.url}/api/v1/audit").status_code == 401


def test_the_audit_api_is_documented(audit: AuditApi) -> None:
    schema = audit.client.get(f"{audit.stack.query.url}/schema/openapi.json").json()
    for path in ("/api/v1/audit", "/api/v1/audit.csv", "/api/v1/inventory/low-stock"):
        assert path in schema["paths"], sorted(schema["paths"])
    names = {p["name"] for p in schema["paths"]["/api/v1/audit"]["get"]["parameters"]}
    assert {"actor", "item", "location", "reason", "event_type", "kind", "cursor"} <= names
