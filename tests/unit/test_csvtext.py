"""The one CSV writer of the exports (app/domain/csvtext.py): RFC 4180 quoting, CRLF lines, an
optional byte order mark, and no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from app.domain import csvtext

EVIL = "=cmd|' /C calc'!A0"


def parsed(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_a_formula_cell_is_escaped_with_an_apostrophe_and_still_parses_as_one_cell() -> None:
    text = csvtext.line([EVIL, "plain", 3])
    assert parsed(text) == [["'" + EVIL, "plain", "3"]]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_is_escaped(start: str) -> None:
    assert csvtext.cell(start + "SUM(A1:A9)").lstrip('"').startswith("'" + start)


def test_numbers_stay_numbers_and_none_is_empty() -> None:
    assert csvtext.line([-3, 0, 2.5, None, True, False]) == "-3,0,2.5,,true,false\r\n"


def test_commas_quotes_and_line_breaks_are_quoted_as_rfc_4180_says() -> None:
    values = ['Mug, "blue"', "two\nlines", "cr\rhere", "plain"]
    text = csvtext.line(values)
    assert text == '"Mug, ""blue""","two\nlines","cr\rhere",plain\r\n'
    assert parsed(text) == [values]


def test_lines_end_with_crlf_and_the_bom_comes_only_when_asked() -> None:
    assert csvtext.header(["sku", "name"]) == "sku,name\r\n"
    with_bom = csvtext.header(["sku", "name"], bom=True)
    assert with_bom.encode("utf-8")[:3] == b"\xef\xbb\xbf"
    assert with_bom.encode("utf-8").decode("utf-8-sig") == "sku,name\r\n"
    assert csvtext.lines([["A", 1], ["B", 2]]) == "A,1\r\nB,2\r\n"
    assert csvtext.lines([]) == ""


def test_text_that_is_not_ascii_is_written_as_is() -> None:
    assert parsed(csvtext.line(["Café crème", "日本"])) == [["Café crème", "日本"]]
