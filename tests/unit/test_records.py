"""Change records keep their wire format, and the live pages render removals as the elements
they remove."""

from __future__ import annotations

from typing import Any, cast

import msgspec

from app.domain.records import ItemChange, ItemSummary, ItemView, LevelView, OutcomeChange, decode_change, encode_text
from app.jsontext import change_record
from app.queries.service import QueryService
from app.web.live import LiveUpdates, View
from app.web.rendering import Renderer, build_environment

T = "2026-01-01T00:00:00.000Z"
SUMMARY = ItemSummary(
    id="i1", sku="MUG", name="Mug", description="", quantity=3, reserved=1, available=2, version=4,
    created_at=T, updated_at=T, low_stock_threshold=None,
)  # fmt: skip
ITEM = ItemView(**msgspec.structs.asdict(SUMMARY), locations=[LevelView("MAIN", 3, 1, 2, 4, T)])
CONTEXT: dict[str, Any] = {
    "low_stock_default": 5, "locations": ("MAIN",), "default_location": "MAIN", "command_base": "",
    "can_move_stock": False, "can_manage_items": False, "location": None,
}  # fmt: skip


def test_an_item_change_is_stored_as_the_json_of_the_feed() -> None:
    # The item's summary (chain totals) and only the levels the batch changed.
    assert encode_text(ItemChange("i1", 4, False, False, SUMMARY, [LevelView("MAIN", 3, 1, 2, 4, T)])) == (
        '{"kind":"item","item_id":"i1","version":4,"created":false,"deleted":false,"item":{"id":"i1","sku":"MUG",'
        '"name":"Mug","description":"","quantity":3,"reserved":1,"available":2,"version":4,'
        '"created_at":"2026-01-01T00:00:00.000Z","updated_at":"2026-01-01T00:00:00.000Z","low_stock_threshold":null,'
        '"in_transit":0},"levels":[{"location":"MAIN","quantity":3,"reserved":1,"available":2,"version":4,'
        '"updated_at":"2026-01-01T00:00:00.000Z"}]}'
    )
    assert encode_text(ItemChange("i1", 5, False, True, None, [])) == (
        '{"kind":"item","item_id":"i1","version":5,"created":false,"deleted":true,"item":null,"levels":[]}'
    )


def test_an_outcome_keeps_its_nulls_and_a_published_record_reads_back_with_its_seq() -> None:
    outcome = OutcomeChange("c1", "i1", "inventory.stock.reserved", "MAIN", "applied", None, None, 4, T, T)
    payload = encode_text(outcome)
    assert payload == (
        '{"kind":"outcome","command_id":"c1","item_id":"i1","event_type":"inventory.stock.reserved",'
        '"location":"MAIN","status":"applied","reason":null,"message":null,"version":4,'
        '"submitted_at":"2026-01-01T00:00:00.000Z","processed_at":"2026-01-01T00:00:00.000Z"}'
    )
    published = decode_change(change_record(17, payload))
    assert isinstance(published, OutcomeChange) and published.seq == 17 and published.command_id == "c1"
    assert decode_change(payload) == outcome


async def test_live_removals_are_the_elements_they_remove() -> None:
    live = LiveUpdates(Renderer(build_environment(), {}))
    gone = ItemChange("i1", 5, False, True, None, [], seq=9)
    no_queries = cast(QueryService, None)  # rows and tiles come with the change
    tile = await live.render(gone, View("wall", location="MAIN"), CONTEXT, no_queries)
    assert '<article id="tile-i1" hx-swap-oob="delete"></article>' in tile
    row = await live.render(gone, View("dashboard"), CONTEXT, no_queries)
    assert row.startswith("<template>") and '<tr id="row-i1" hx-swap-oob="delete"></tr>' in row
    # A wall's stream carries the summary and the level of its location only.
    change = ItemChange("i1", 4, False, False, SUMMARY, [LevelView("MAIN", 3, 1, 2, 4, T)], seq=8)
    shown = await live.render(change, View("wall", location="MAIN"), CONTEXT, no_queries)
    assert 'id="tile-i1"' in shown and "tile low" in shown and 'hx-swap-oob="outerHTML"' in shown


async def test_an_edit_reaches_a_store_page_with_the_level_it_shows() -> None:
    # An edit carries no level: the wall reads its location's level (cache-first) to show it.
    live = LiveUpdates(Renderer(build_environment(), {}))
    renamed = msgspec.structs.replace(SUMMARY, name="Big mug", version=5)
    asked: list[tuple[str, list[str] | None]] = []

    class Queries:
        async def item(self, item_id: str, locations: list[str] | None = None) -> ItemView:
            asked.append((item_id, locations))
            return ItemView(**msgspec.structs.asdict(renamed), locations=[LevelView("S001", 9, 1, 8, 2, T)])

    edit = ItemChange("i1", 5, False, False, renamed, [], seq=10)
    tile = await live.render(edit, View("wall", location="S001"), CONTEXT, cast(QueryService, Queries()))
    assert asked == [("i1", ["S001"])]
    assert "Big mug" in tile and '<span class="tile-available">8</span>' in tile
    # The chain's dashboard shows the totals the change carries, without reading anything.
    row = await live.render(edit, View("dashboard"), CONTEXT, cast(QueryService, None))
    assert "Big mug" in row and '<td class="num available" data-label="Available">2' in row and len(asked) == 1
