"""The rules of a CSV import (app/domain/imports.py): what a file and each row mean."""

from __future__ import annotations

import pytest

from app.domain.catalogue import Places
from app.domain.events import EventType
from app.domain.imports import (
    FileRefused,
    Limits,
    ParsedFile,
    decode_command,
    encode_command,
    idempotency_key,
    parse_file,
    with_item,
    within_scope,
)

PLACES = Places(("MAIN", "S001", "S002"), "MAIN")
LIMITS = Limits(max_bytes=10 * 1024 * 1024, max_rows=1000)


def parse(text: str | bytes, kind: str = "counts", limits: Limits = LIMITS) -> ParsedFile:
    data = text.encode() if isinstance(text, str) else text
    return parse_file(data, kind, PLACES, limits)  # type: ignore[arg-type]


def refused(text: str | bytes, kind: str = "counts", limits: Limits = LIMITS) -> FileRefused:
    with pytest.raises(FileRefused) as caught:
        parse(text, kind, limits)
    return caught.value


def errors_of(parsed: ParsedFile) -> dict[int, list[tuple[str, str]]]:
    return {row.number: [(e.column, e.message) for e in row.errors] for row in parsed.rows if row.errors}


# --- spreadsheet quirks ---------------------------------------------------------------------


def test_bom_semicolons_crlf_and_quotes_are_read() -> None:
    data = b'\xef\xbb\xbfSKU;Location;Counted;Note\r\nMUG-1;s001;12;"shelf; top\r\nrow"\r\n"MUG-2";MAIN;0;\r\n'
    parsed = parse(data)
    assert parsed.columns == ("sku", "location", "counted", "note")
    assert [row.number for row in parsed.rows] == [2, 3]
    first = parsed.rows[0]
    assert first.errors == ()
    assert first.command is not None
    assert first.command.event_type is EventType.STOCK_COUNTED
    assert first.command.location == "S001"
    assert first.command.data.counted == 12  # type: ignore[attr-defined]
    assert first.command.data.note == "shelf; top\r\nrow"  # type: ignore[attr-defined]
    assert parsed.rows[1].sku == "MUG-2"


def test_columns_in_any_order_and_case_and_blank_lines_skipped() -> None:
    parsed = parse("Counted,SKU,LOCATION\n5,A,MAIN\n\n,,\n7,B,S002\n")
    assert [(row.number, row.sku) for row in parsed.rows] == [(2, "A"), (5, "B")]
    assert all(row.valid for row in parsed.rows)


def test_count_sheet_columns_name_and_expected_are_accepted_and_ignored() -> None:
    parsed = parse("sku,name,location,expected,counted\nA,=HYPERLINK(1),MAIN,4,6\n")
    assert parsed.rows[0].valid


# --- the file as a whole --------------------------------------------------------------------


@pytest.mark.parametrize("text", [b"", b"   \r\n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_refused(text: bytes) -> None:
    assert "empty" in refused(text).message


def test_header_only_is_refused() -> None:
    assert refused("sku,location,counted\r\n").message == "the file has a header but no rows"


def test_missing_columns_are_named() -> None:
    error = refused("sku,counted\nA,1\n")
    assert error.column == "location"
    assert "missing column location" in error.message


def test_unknown_columns_are_named() -> None:
    error = refused("sku,location,counted,colour\nA,MAIN,1,red\n")
    assert error.column == "colour"
    assert "unknown column colour" in error.message


def test_a_repeated_column_is_refused() -> None:
    assert "more than once" in refused("sku,location,counted,SKU\nA,MAIN,1,B\n").message


def test_not_utf8_is_refused_with_where() -> None:
    error = refused("sku,location,counted,note\nA,MAIN,1,café\n".encode("latin-1"))
    assert "not UTF-8" in error.message
    assert "byte 39" in error.message  # the é


def test_a_row_with_ten_thousand_columns_is_refused() -> None:
    error = refused("sku,location,counted\n" + ",".join(["1"] * 10_000) + "\n")
    assert error.row == 2
    assert "10000 columns; at most 50" in error.message


def test_too_many_rows_and_bytes_are_refused() -> None:
    text = "sku,location,counted\n" + "".join(f"A{n},MAIN,1\n" for n in range(11))
    assert "more than 10 rows" in refused(text, limits=Limits(max_bytes=10_000, max_rows=10)).message
    assert "larger than 20 bytes" in refused(text, limits=Limits(max_bytes=20, max_rows=100)).message


def test_an_unknown_kind_is_refused() -> None:
    assert refused("sku\nA\n", kind="prices").column == "kind"


# --- each row -------------------------------------------------------------------------------


def test_every_error_of_a_row_is_reported_with_its_column() -> None:
    parsed = parse("sku,location,counted\nbad sku!,S009,1.5\n")
    assert errors_of(parsed) == {
        2: [
            ("sku", "must be 1-64 characters of A-Z a-z 0-9 . _ -"),
            ("counted", "must be a whole number"),
            ("location", "unknown location 'S009'; known: MAIN, S001, S002"),
        ]
    }
    assert parsed.rows[0].command is None


def test_required_cells_may_not_be_blank() -> None:
    parsed = parse("sku,location,counted\n,,3\nA,MAIN,\n")
    assert errors_of(parsed) == {
        2: [("sku", "is required"), ("location", "is required")],
        3: [("counted", "is required")],
    }


def test_a_count_below_zero_is_refused_as_by_the_form() -> None:
    assert errors_of(parse("sku,location,counted\nA,MAIN,-1\n")) == {2: [("counted", "must be at least 0")]}


def test_duplicate_rows_name_the_first() -> None:
    parsed = parse("sku,location,counted\nA,MAIN,1\nB,MAIN,1\nA,main,2\n")
    assert errors_of(parsed) == {4: [("sku", "duplicate of row 2 (same sku, location)")]}


def test_adjustments_check_reason_and_direction() -> None:
    parsed = parse(
        "sku,location,quantity,reason,note\nA,MAIN,-2,damaged,dropped\nA,MAIN,3,bogus,\nA,MAIN,-3,received,\n",
        "adjustments",
    )
    assert parsed.rows[0].valid
    assert parsed.rows[0].command is not None
    assert parsed.rows[0].command.data.quantity == -2  # type: ignore[attr-defined]
    errors = errors_of(parsed)
    assert errors[3] == [("reason", "must be one of: received, sold, returned, damaged, lost, theft, correction")]
    assert errors[4] == [("quantity", "must add stock for reason 'received'")]


def test_identical_adjustment_rows_are_duplicates() -> None:
    parsed = parse("sku,location,quantity,reason\nA,MAIN,1,received\nA,MAIN,1,received\n", "adjustments")
    assert errors_of(parsed) == {3: [("sku", "duplicate of row 2 (same sku, location, quantity, reason)")]}


def test_transfers_move_or_ship() -> None:
    parsed = parse(
        "sku,from_location,to_location,quantity,mode\nA,MAIN,S001,2,\nA,MAIN,S002,2,ship\nA,MAIN,S001,0,fly\n",
        "transfers",
    )
    assert [row.command.event_type for row in parsed.rows[:2] if row.command] == [
        EventType.STOCK_TRANSFERRED,
        EventType.TRANSFER_SHIPPED,
    ]
    assert errors_of(parsed) == {4: [("mode", "must be one of: move, ship"), ("quantity", "must be at least 1")]}


def test_new_items() -> None:
    parsed = parse("sku,name,quantity,location,low_stock_threshold\nNEW-1,Mug,4,S001,2\nNEW-2,,x,,\n", "items")
    command = parsed.rows[0].command
    assert command is not None and command.event_type is EventType.ITEM_CREATED
    assert command.data.sku == "NEW-1" and command.data.quantity == 4  # type: ignore[attr-defined]
    assert errors_of(parsed) == {3: [("name", "is required"), ("quantity", "must be a whole number")]}


# --- naming items, scope, keys --------------------------------------------------------------


def test_rows_are_aimed_at_the_item_their_sku_names() -> None:
    parsed = parse("sku,location,counted\nA,MAIN,1\nNOPE,MAIN,1\n")
    known = {"A": "11111111-1111-1111-1111-111111111111"}
    aimed = [with_item(row, "counts", known, parsed.digest) for row in parsed.rows]
    assert aimed[0].command is not None and aimed[0].command.item_id == known["A"]
    assert [(e.column, e.message) for e in aimed[1].errors] == [("sku", "no item has this SKU")]
    assert aimed[1].command is None


def test_a_new_item_gets_an_id_from_the_file_and_row_and_may_not_take_a_sku() -> None:
    parsed = parse("sku,name\nNEW-1,Mug\nOLD,Cup\n", "items")
    first = with_item(parsed.rows[0], "items", {"OLD": "x"}, parsed.digest)
    again = with_item(parse("sku,name\nNEW-1,Mug\nOLD,Cup\n", "items").rows[0], "items", {}, parsed.digest)
    assert first.command is not None and again.command is not None
    assert first.command.item_id == again.command.item_id
    taken = with_item(parsed.rows[1], "items", {"OLD": "x"}, parsed.digest)
    assert [(e.column, e.message) for e in taken.errors] == [("sku", "an item with this SKU already exists")]


def test_a_store_limited_user_may_not_import_rows_of_other_stores() -> None:
    parsed = parse("sku,location,counted\nA,S001,1\nA,S002,1\n")
    rows = [with_item(row, "counts", {"A": "i"}, parsed.digest) for row in parsed.rows]
    mine, theirs = (within_scope(row, frozenset({"S001"})) for row in rows)
    assert mine.valid
    assert not theirs.valid
    assert theirs.errors[0].column == "location"
    assert "S002" in theirs.errors[0].message


def test_a_store_limited_user_may_not_create_items() -> None:
    parsed = parse("sku,name\nNEW,Mug\n", "items")
    row = within_scope(with_item(parsed.rows[0], "items", {}, parsed.digest), frozenset({"S001"}))
    assert not row.valid


def test_keys_and_stored_commands() -> None:
    parsed = parse("sku,location,counted,note\nA,MAIN,3,ok\n")
    row = with_item(parsed.rows[0], "counts", {"A": "i"}, parsed.digest)
    assert row.command is not None
    assert decode_command(encode_command(row.command)) == row.command
    assert idempotency_key("counts", parsed.digest, 2) == idempotency_key("counts", parse_digest_of(parsed), 2)
    assert idempotency_key("counts", parsed.digest, 2) != idempotency_key("counts", parsed.digest, 3)


def parse_digest_of(parsed: ParsedFile) -> str:
    return parse("sku,location,counted,note\nA,MAIN,3,ok\n").digest


def test_an_unknown_sku_is_reported_beside_the_other_errors_of_its_row() -> None:
    parsed = parse("sku,location,counted\nNOPE,MAIN,x\nbad sku!,MAIN,x\n")
    rows = [with_item(row, "counts", {}, parsed.digest) for row in parsed.rows]
    assert [(e.column, e.message) for e in rows[0].errors] == [
        ("counted", "must be a whole number"),
        ("sku", "no item has this SKU"),
    ]
    assert [e.column for e in rows[1].errors] == ["sku", "counted"]
