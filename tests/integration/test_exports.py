"""CSV exports through the real split stack (command, listener and query processes on Kafka and
Redis): each export's header and rows against the JSON API for the same data and filters, the
wide layout and the count sheet, formula cells escaped, bad filters refused; and a large export
streamed from a query process over a file of 50,000 levels while other requests are answered.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.listener.schema import open_writer
from tests.support.app import PASSWORD, USERS, base_env, kafka_env
from tests.support.processes import ServiceProcess, run_cli
from tests.support.services import RedisServer
from tests.support.stack import Stack, split_stack
from tests.support.waiting import wait_until

API = "/api/v1/inventory"
EVIL = "=cmd|' /C calc'!A0"
LOCATIONS = ["MAIN", "S001", "S002"]


class ExportApi:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(timeout=60)
        self.admin = stack.token()
        self.viewer = stack.token("viewer")

    def create(self, sku: str, name: str, quantity: int, **fields: Any) -> str:
        return str(self.stack.create_item(self.admin, sku=sku, name=name, quantity=quantity, **fields)["id"])

    def command(self, item_id: str, name: str, body: dict[str, Any]) -> httpx.Response:
        response = self.client.post(
            f"{self.stack.command.url}{API}/items/{item_id}/{name}",
            json=body,
            headers={**self.admin, "Prefer": "wait=20"},
        )
        assert response.status_code == 200, response.text
        return response

    def json(self, path: str, **params: Any) -> Any:
        response = self.client.get(f"{self.stack.query.url}{API}{path}", params=params, headers=self.viewer)
        assert response.status_code == 200, response.text
        return response.json()

    def export(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"{self.stack.query.url}{path}", params=params, headers=self.viewer)

    def rows(self, path: str, **params: Any) -> tuple[list[str], list[dict[str, str]]]:
        response = self.export(path, **params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        text = response.content.decode("utf-8")
        assert text.endswith("\r\n") and "\r\n" in text
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def api(
    kafka_bootstrap: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExportApi]:
    root = tmp_path_factory.mktemp("exports")
    (root / "data").mkdir()
    with split_stack(kafka_bootstrap, redis_server.url, root / "data", root) as stack:
        found = ExportApi(stack)
        try:
            yield found
        finally:
            found.client.close()


@pytest.fixture(scope="module")
def shop(api: ExportApi) -> dict[str, str]:
    """Three items of one tag: one stocked at MAIN and S001 with a formula for a name, one low
    with a comma and quotes in its name, one stocked nowhere; transfers and reservations."""
    tag = uuid.uuid4().hex[:6].upper()
    ids = {
        "tag": tag,
        "a": api.create(f"EXP-{tag}-A", EVIL, 10),
        "b": api.create(f"EXP-{tag}-B", 'Mug, "blue"', 2, low_stock_threshold=3),
        "c": api.create(f"EXP-{tag}-C", "Nothing yet", 0),
    }
    api.command(ids["a"], "adjust", {"quantity": 4, "location": "S001", "reason": "received", "note": "-2 boxes"})
    ids["shipped"] = api.command(
        ids["a"], "ship", {"quantity": 3, "from_location": "MAIN", "to_location": "S001"}
    ).headers["X-Transfer-ID"]
    ids["moved"] = api.command(
        ids["b"], "transfer", {"quantity": 1, "from_location": "MAIN", "to_location": "S002"}
    ).headers["X-Transfer-ID"]
    ids["held"] = api.command(
        ids["a"], "reserve", {"quantity": 1, "location": "S001", "reference": f"{tag}-r1"}
    ).headers["X-Reservation-ID"]
    ids["cancelled"] = api.command(ids["b"], "reserve", {"quantity": 1, "location": "MAIN"}).headers["X-Reservation-ID"]
    api.command(ids["b"], "cancel-reservation", {"reservation_id": ids["cancelled"]})
    return ids


def json_items(api: ExportApi, tag: str, **params: Any) -> list[dict[str, Any]]:
    listed = api.json("/items", q=tag, page_size=100, **params)["items"]
    return [api.json(f"/items/{item['id']}") for item in listed]


def test_the_long_layout_is_one_row_per_item_and_location_as_the_json_api_has_them(
    api: ExportApi, shop: dict[str, str]
) -> None:
    columns, rows = api.rows(f"{API}/items.csv", q=shop["tag"])
    assert columns == [
        "sku",
        "name",
        "location",
        "quantity",
        "reserved",
        "available",
        "threshold",
        "state",
        "updated_at",
    ]
    expected = []
    for item in json_items(api, shop["tag"]):
        name = "'" + item["name"] if item["name"].startswith("=") else item["name"]
        threshold = str(item["low_stock_threshold"] if item["low_stock_threshold"] is not None else 5)
        for level in item["locations"] or [None]:
            source = level or item
            expected.append(
                (item["sku"], name, level["location"] if level else "", str(source["quantity"]),
                 str(source["reserved"]), str(source["available"]), threshold, source["updated_at"])
            )  # fmt: skip
    assert [
        (
            r["sku"],
            r["name"],
            r["location"],
            r["quantity"],
            r["reserved"],
            r["available"],
            r["threshold"],
            r["updated_at"],
        )
        for r in rows
    ] == expected
    tag = shop["tag"]
    by_key = {(r["sku"], r["location"]): r for r in rows}
    assert by_key[(f"EXP-{tag}-A", "MAIN")]["name"] == "'" + EVIL  # no CSV injection
    assert by_key[(f"EXP-{tag}-B", "MAIN")]["name"] == 'Mug, "blue"'
    # A: 7 at MAIN, 4 at S001 with 1 held (default threshold 5); B: 1 and 1 (its threshold 3).
    assert [by_key[key]["state"] for key in ((f"EXP-{tag}-A", "MAIN"), (f"EXP-{tag}-A", "S001"))] == ["ok", "low"]
    assert [by_key[key]["threshold"] for key in ((f"EXP-{tag}-A", "MAIN"), (f"EXP-{tag}-B", "S002"))] == ["5", "3"]
    assert by_key[(f"EXP-{tag}-B", "S002")]["state"] == "low"


def test_a_location_narrows_the_long_layout_to_what_is_stocked_there(api: ExportApi, shop: dict[str, str]) -> None:
    _, rows = api.rows(f"{API}/items.csv", q=shop["tag"], location="S001")
    listed = api.json("/items", q=shop["tag"], location="S001")["items"]
    assert [(r["sku"], r["location"], r["quantity"], r["reserved"]) for r in rows] == [
        (item["sku"], "S001", str(item["quantity"]), str(item["reserved"])) for item in listed
    ]
    assert [r["sku"] for r in rows] == [f"EXP-{shop['tag']}-A"]
    # A search that finds nothing: the header only.
    assert api.rows(f"{API}/items.csv", q=f"NONE{shop['tag']}")[1] == []


def test_the_wide_layout_has_a_column_per_location_and_totals_that_add_up(api: ExportApi, shop: dict[str, str]) -> None:
    columns, rows = api.rows(f"{API}/items.csv", q=shop["tag"], layout="wide")
    assert columns == ["sku", "name", *LOCATIONS, "quantity", "reserved", "available", "threshold"]
    items = json_items(api, shop["tag"])
    assert [r["sku"] for r in rows] == [item["sku"] for item in items]
    for row, item in zip(rows, items, strict=True):
        levels = {level["location"]: level for level in item["locations"]}
        assert [row[code] for code in LOCATIONS] == [
            str(levels[c]["quantity"]) if c in levels else "" for c in LOCATIONS
        ]
        assert (row["quantity"], row["reserved"], row["available"]) == (
            str(item["quantity"]), str(item["reserved"]), str(item["available"])
        )  # fmt: skip
    columns, rows = api.rows(f"{API}/items.csv", q=shop["tag"], layout="wide", location="S002,S001")
    assert columns == ["sku", "name", "S002", "S001", "quantity", "reserved", "available", "threshold"]
    assert {r["sku"]: (r["S002"], r["S001"], r["quantity"]) for r in rows} == {
        f"EXP-{shop['tag']}-A": ("", "4", "4"),
        f"EXP-{shop['tag']}-B": ("1", "", "1"),
    }


def test_the_count_sheet_lists_each_level_with_counted_left_empty(api: ExportApi, shop: dict[str, str]) -> None:
    response = api.export(f"{API}/items.csv", q=shop["tag"], layout="counts", location="MAIN")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith('attachment; filename="count-sheet-MAIN-')
    lines = response.content.decode().split("\r\n")
    assert lines[0] == "sku,name,location,expected,counted"
    tag = shop["tag"]
    assert lines[1:] == [
        f"EXP-{tag}-A,'{EVIL},MAIN,7,",
        f'EXP-{tag}-B,"Mug, ""blue""",MAIN,1,',
        f"EXP-{tag}-C,Nothing yet,MAIN,0,",
        "",
    ]


def test_a_count_sheet_filled_in_goes_back_in_as_a_counts_import(api: ExportApi) -> None:
    """The round trip: export a store's count sheet (as the page does, with the byte order mark),
    fill in ``counted``, upload it as a counts import, confirm: the counts are applied."""
    tag = uuid.uuid4().hex[:6].upper()
    for n, quantity in enumerate((8, 3)):
        api.create(f"RT-{tag}-{n}", f"Round trip, {n}", quantity, location="S002")
    sheet = api.export(f"{API}/items.csv", q=f"RT-{tag}", layout="counts", location="S002", bom="true").content
    text = sheet.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["sku"], r["expected"], r["counted"]) for r in rows] == [
        (f"RT-{tag}-0", "8", ""),
        (f"RT-{tag}-1", "3", ""),
    ]
    filled = io.StringIO(newline="")
    writer = csv.DictWriter(filled, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({**row, "counted": str(int(row["expected"]) + 2)} for row in rows)
    upload = api.client.post(
        f"{api.stack.command.url}/api/v1/imports",
        data={"kind": "counts"},
        files={"file": ("s002.csv", ("\ufeff" + filled.getvalue()).encode(), "text/csv")},
        headers=api.admin,
    )
    assert upload.status_code == 201, upload.text
    assert (upload.json()["rows"], upload.json()["error_rows"]) == (2, 0)
    import_id = upload.json()["id"]
    confirmed = api.client.post(f"{api.stack.command.url}/api/v1/imports/{import_id}/confirm", headers=api.admin)
    assert confirmed.status_code == 202, confirmed.text

    def done() -> dict[str, Any] | None:
        found = api.client.get(f"{api.stack.command.url}/api/v1/imports/{import_id}", headers=api.admin).json()
        return dict(found) if found["state"] in ("done", "failed") else None

    final = wait_until(done, timeout=60, interval=0.2)
    assert final is not None and (final["state"], final["applied"], final["rejected"]) == ("done", 2, 0)

    def counted() -> list[tuple[str, str]] | None:
        _, again = api.rows(f"{API}/items.csv", q=f"RT-{tag}", layout="counts", location="S002")
        found = [(r["sku"], r["expected"]) for r in again]
        return found if found == [(f"RT-{tag}-0", "10"), (f"RT-{tag}-1", "5")] else None

    assert wait_until(counted, timeout=30, interval=0.2) is not None


def test_an_items_history_matches_the_json_history_newest_first(api: ExportApi, shop: dict[str, str]) -> None:
    columns, rows = api.rows(f"{API}/items/{shop['a']}/history.csv")
    assert columns[:4] == ["id", "applied_at", "occurred_at", "type"]
    entries = api.json(f"/items/{shop['a']}/history", limit=200)["entries"]
    assert [
        (r["id"], r["type"], r["location"], r["quantity_delta"], r["reserved_delta"], r["reason"]) for r in rows
    ] == [
        (
            str(e["id"]),
            e["type"],
            e["location"] or "",
            str(e["quantity_delta"]),
            str(e["reserved_delta"]),
            e["reason"] or "",
        )
        for e in entries
    ]
    assert "'-2 boxes" in [r["note"] for r in rows]
    response = api.export(f"{API}/items/{shop['a']}/history.csv")
    assert response.headers["content-disposition"].startswith(f'attachment; filename="history-EXP-{shop["tag"]}-A-')
    assert api.export(f"{API}/items/{uuid.uuid4()}/history.csv").status_code == 404
    assert api.export(f"{API}/items/not-an-id/history.csv").status_code == 400


def test_transfers_and_reservations_match_their_json_lists_with_the_same_filters(
    api: ExportApi, shop: dict[str, str]
) -> None:
    for filters in ({"item_id": shop["a"]}, {"item_id": shop["b"]}, {"location": "S001", "state": "in_transit"}, {}):
        _, rows = api.rows(f"{API}/transfers.csv", **filters)
        listed = api.json("/transfers", page_size=100, **filters)["transfers"]
        assert [(r["id"], r["item_id"], r["from_location"], r["to_location"], r["quantity"], r["state"]) for r in rows][
            : len(listed)
        ] == [
            (t["id"], t["item_id"], t["from_location"], t["to_location"], str(t["quantity"]), t["state"])
            for t in listed
        ]
    _, rows = api.rows(f"{API}/transfers.csv", item_id=shop["a"])
    assert [(r["id"], r["sku"], r["state"]) for r in rows] == [(shop["shipped"], f"EXP-{shop['tag']}-A", "in_transit")]

    for filters in (
        {"item_id": shop["b"]},
        {"reference": f"{shop['tag']}-r1"},
        {"location": "MAIN", "state": "cancelled"},
    ):
        _, rows = api.rows(f"{API}/reservations.csv", **filters)
        listed = api.json("/reservations", page_size=100, **filters)["reservations"]
        assert [(r["id"], r["item_id"], r["location"], r["reserved"], r["state"], r["reference"]) for r in rows] == [
            (x["id"], x["item_id"], x["location"], str(x["reserved"]), x["state"], x["reference"] or "") for x in listed
        ]
    _, rows = api.rows(f"{API}/reservations.csv", item_id=shop["a"], state="open")
    assert [(r["id"], r["sku"]) for r in rows] == [(shop["held"], f"EXP-{shop['tag']}-A")]


def test_bad_filters_are_a_400_in_the_one_error_shape_and_the_bom_comes_on_request(
    api: ExportApi, shop: dict[str, str]
) -> None:
    for path, params in (
        (f"{API}/items.csv", {"layout": "tall"}),
        (f"{API}/items.csv", {"location": "NOWHERE"}),
        (f"{API}/items.csv", {"q": "x" * 101}),
        (f"{API}/transfers.csv", {"state": "lost"}),
        (f"{API}/transfers.csv", {"item_id": "nope"}),
        (f"{API}/reservations.csv", {"state": "in_transit"}),
    ):
        response = api.export(path, **params)
        assert response.status_code == 400, (path, params, response.text)
        assert response.json()["error"] and response.json()["details"]
    plain = api.export(f"{API}/items.csv", q=shop["tag"]).content
    marked = api.export(f"{API}/items.csv", q=shop["tag"], bom="true").content
    assert not plain.startswith(b"\xef\xbb\xbf") and marked == b"\xef\xbb\xbf" + plain
    assert api.export("/api/v1/audit.csv", item=f"EXP-{shop['tag']}-A", bom="true").content.startswith(b"\xef\xbb\xbf")
    assert httpx.get(f"{api.stack.query.url}{API}/items.csv").status_code == 401


# --- a large export, streamed ------------------------------------------------------------------

ITEMS = 5_000
STORES = [f"S{n:03d}" for n in range(1, 11)]  # 10 locations: 50,000 levels


async def fill(path: Path) -> None:
    """A database as the listener leaves it (its own schema), with ITEMS items stocked at every
    store, written directly: applying 50,000 events would take minutes."""
    conn = await open_writer(str(path))
    try:
        await conn.execute("BEGIN")
        stamp = "2026-12-01T00:00:00.000Z"
        items = [(str(uuid.UUID(int=n + 1)), f"BIG-{n:06d}", f"Big item {n}") for n in range(ITEMS)]
        await conn.executemany(
            "INSERT INTO items (id, sku, name, version, created_at, updated_at, quantity, reserved) "
            f"VALUES (?, ?, ?, 1, '{stamp}', '{stamp}', {10 * len(STORES)}, 0)",
            items,
        )
        await conn.executemany(
            f"INSERT INTO stock_levels (item_id, location, quantity, reserved, version, updated_at) "
            f"VALUES (?, ?, 10, 0, 1, '{stamp}')",
            [(item_id, store) for item_id, _, _ in items for store in STORES],
        )
        await conn.execute("COMMIT")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def big_query(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("big-export")
    data = root / "data"
    data.mkdir()
    asyncio.run(fill(data / "inventory.db"))
    env = base_env(data, **kafka_env(kafka_bootstrap), INVENTORY_LOCATIONS=",".join(STORES))
    for name, role in USERS.items():
        run_cli(env, "users", "add", name, "--role", role.value, "--password", PASSWORD)
    process = ServiceProcess("query", env, root / "query.log").start()
    try:
        yield process
    finally:
        process.stop()


def test_a_large_export_is_streamed_while_other_requests_are_answered(big_query: ServiceProcess) -> None:
    login = httpx.post(f"{big_query.url}/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    with (
        httpx.Client(base_url=big_query.url, headers=headers, timeout=60) as exporting,
        httpx.Client(base_url=big_query.url, headers=headers, timeout=60) as other,
        exporting.stream("GET", f"{API}/items.csv") as response,
    ):
        assert response.status_code == 200
        # Chunked: the length is not known up front, since the rows are never all in memory.
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        chunks = response.iter_bytes()
        first = next(chunks)
        assert first.startswith(b"sku,name,location,")
        # The export is open and not read to its end: the service answers others meanwhile.
        assert other.get("/api/v1/health").status_code == 200
        item = other.get(f"{API}/items/sku/BIG-004999")
        assert item.status_code == 200 and item.json()["quantity"] == 10 * len(STORES)
        body = first + b"".join(chunks)
    lines = body.decode().split("\r\n")
    assert len(lines) == 1 + ITEMS * len(STORES) + 1 and lines[-1] == ""
    assert lines[1].startswith("BIG-000000,Big item 0,S001,10,0,10,5,ok,")
    assert lines[-2].startswith("BIG-004999,Big item 4999,S010,10,0,10,")
    # Every level once, in SKU then location order.
    keys = [tuple(line.split(",")[:3:2]) for line in lines[1:-1]]
    assert keys == sorted(set(keys))
