"""The stock wall's rules (app/domain/wall.py): what a wall URL may ask for, and the tiles' order."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain.wall import (
    MAX_LOCATIONS,
    ROTATE_DEFAULT,
    WallOptionError,
    WallOptions,
    parse_wall_options,
    shown_on,
    sku_on,
    tile_key,
    tile_rank,
)
from app.web.wall import kiosk_refusal

KNOWN = ("MAIN", "S001", "S002", "S003")


def parse(**params: str | list[str]) -> WallOptions:
    lists = {name: value if isinstance(value, list) else [value] for name, value in params.items()}
    return parse_wall_options(lists, known=KNOWN, default_location="S002")


def test_no_options_is_the_default_location_everything_normal_density_and_the_default_rotation() -> None:
    options = parse()
    assert options == WallOptions(locations=("S002",), show="all", rotate=ROTATE_DEFAULT, density="normal", page=1)
    assert (options.columns, options.rows, options.page_size) == (5, 4, 20)
    assert not options.several and not options.attention_only


def test_several_locations_by_repeating_or_by_a_comma_list_in_any_case_without_duplicates() -> None:
    assert parse(location=["s001", "S002"]).locations == ("S001", "S002")
    assert parse(location=" S002 , main,S002,").locations == ("S002", "MAIN")
    assert parse(location=["S001,S003", "s001"]).locations == ("S001", "S003")
    assert parse(location="S001,S003").several


def test_the_other_options_are_read_in_any_case() -> None:
    options = parse(show="Attention", rotate="5", density="COMPACT", page="3")
    assert (options.show, options.rotate, options.density, options.page) == ("attention", 5, "compact", 3)
    assert options.attention_only and options.page_size == 40
    assert parse(density="large").page_size == 12
    assert parse(rotate="3600").rotate == 3600


def test_empty_values_mean_the_defaults() -> None:
    assert parse(location="", show="", rotate="", density="", page="", sku="") == parse()


def test_a_department_wall_shows_the_skus_that_start_with_its_prefix_in_any_case() -> None:
    jeans = parse(sku="JNS-")
    assert jeans.sku == "JNS-"
    assert sku_on(jeans, "JNS-BLK-32") and sku_on(jeans, "jns-blk-32")
    assert not sku_on(jeans, "TSH-JNS-1") and not sku_on(jeans, "JNS")
    assert sku_on(parse(), "anything")
    assert parse_qs(jeans.query())["sku"] == ["JNS-"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"location": "S009"}, "unknown location S009"),
        ({"location": "S001,NOPE"}, "unknown location NOPE"),
        ({"location": "<script>"}, "unknown location <SCRIPT>"),
        ({"show": "some"}, "show must be one of all, attention"),
        ({"density": "huge"}, "density must be one of large, normal, compact"),
        ({"rotate": "4"}, "rotate must be from 5 to 3600"),
        ({"rotate": "3601"}, "rotate must be from 5 to 3600"),
        ({"rotate": "99999999999999999999999"}, "rotate must be from 5 to 3600"),
        ({"rotate": "-5"}, "rotate must be a whole number"),
        ({"rotate": "1.5"}, "rotate must be a whole number"),
        ({"rotate": "ten"}, "rotate must be a whole number"),
        ({"page": "0"}, "page must be from 1 to 100000"),
        ({"show": ["all", "attention"]}, "give show once"),
        ({"rotate": ["10", "20"]}, "give rotate once"),
        ({"sku": "JNS %"}, "sku must be the start of a SKU"),
    ],
)
def test_absurd_options_are_refused_with_what_is_wrong(params: dict[str, str | list[str]], says: str) -> None:
    with pytest.raises(WallOptionError, match=says.replace("(", r"\(")):
        parse(**params)


def test_an_unknown_location_names_the_ones_there_are() -> None:
    with pytest.raises(WallOptionError, match="this site has MAIN, S001, S002, S003"):
        parse(location="S404")


def test_a_wall_shows_a_region_not_the_chain() -> None:
    many = tuple(f"S{n:03d}" for n in range(MAX_LOCATIONS + 1))
    lists = {"location": [",".join(many)]}
    assert parse_wall_options({"location": [",".join(many[:-1])]}, known=many, default_location="S000").several
    with pytest.raises(WallOptionError, match=f"at most {MAX_LOCATIONS} locations"):
        parse_wall_options(lists, known=many, default_location="S000")


def test_options_the_wall_does_not_know_are_left_alone() -> None:
    assert parse(theme="dark") == parse()


def test_the_query_string_carries_every_option_and_reads_back_the_same() -> None:
    options = parse(location="S001,S003", show="attention", rotate="30", density="large")
    query = parse_qs(options.query(page=4))
    assert query == {
        "location": ["S001,S003"],
        "show": ["attention"],
        "rotate": ["30"],
        "density": ["large"],
        "page": ["4"],
    }
    assert parse_wall_options(query, known=KNOWN, default_location="MAIN") == WallOptions(
        ("S001", "S003"), "attention", 30, "large", 4
    )
    assert "page" not in parse_qs(options.query())


def test_out_comes_first_then_low_by_how_far_below_the_threshold_then_the_rest_alike() -> None:
    default = 5
    assert tile_rank(0, None, default) == (0, -5)
    assert tile_rank(0, 10, default) == (0, -10)  # out, and further below its own threshold
    assert tile_rank(1, 10, default) == (1, -9)
    assert tile_rank(4, None, default) == (1, -1)
    assert tile_rank(5, None, default) == (1, 0)  # at the threshold counts as low
    assert tile_rank(6, None, default) == (2, 0)
    assert tile_rank(400, 3, default) == (2, 0)  # plenty: no rank by how much


def test_tiles_sort_by_urgency_then_name_sku_and_location() -> None:
    default = 5
    tiles = [
        ("plenty b", 50, None, "Bread", "SKU-B", "S001"),
        ("plenty a", 90, None, "apples", "SKU-A", "S001"),
        ("low by one", 4, None, "Zucchini", "SKU-Z", "S001"),
        ("low by eight", 2, 10, "Milk", "SKU-M", "S001"),
        ("out", 0, None, "Yoghurt", "SKU-Y", "S002"),
        ("out, higher threshold", 0, 20, "Yoghurt", "SKU-Y2", "S001"),
        ("same item elsewhere", 0, None, "Yoghurt", "SKU-Y", "S001"),
        ("just fine", 6, None, "Aardvark food", "SKU-AF", "S001"),
    ]
    ordered = sorted(tiles, key=lambda t: tile_key(t[1], t[2], default, t[3], t[4], t[5]))
    assert [t[0] for t in ordered] == [
        "out, higher threshold",
        "same item elsewhere",
        "out",
        "low by eight",
        "low by one",
        "just fine",
        "plenty a",
        "plenty b",
    ]


def test_an_attention_wall_shows_only_out_and_low() -> None:
    attention, everything = parse(show="attention"), parse()
    assert shown_on(attention, 0, None, 5) and shown_on(attention, 5, None, 5)
    assert not shown_on(attention, 6, None, 5)
    assert not shown_on(attention, 3, 2, 5)  # its own threshold is lower than the default
    assert all(shown_on(everything, n, None, 5) for n in (0, 5, 6, 500))


def test_a_kiosk_link_may_show_only_its_own_stores_and_people_any() -> None:
    kiosk = Principal("wall-s001", Role.VIEWER, locations=frozenset({"S001", "S003"}), kind="kiosk")
    assert kiosk_refusal(kiosk, parse(location="S001")) is None
    assert kiosk_refusal(kiosk, parse(location="S003,S001")) is None
    refusal = kiosk_refusal(kiosk, parse(location="S001,S002,MAIN"))
    assert refusal == "this wall link shows S001, S003 only, not S002, MAIN"
    limited = Principal("ana", Role.VIEWER, locations=frozenset({"S001"}))
    assert kiosk_refusal(limited, parse(location="S002")) is None
    assert kiosk_refusal(Principal("wall-all", Role.VIEWER, kind="kiosk"), parse(location="S002")) is None
