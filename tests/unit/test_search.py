"""The search rule (every word in the SKU or the name) and the full-text query built from it."""

from __future__ import annotations

import sqlite3

import pytest

from app.domain.records import ItemSummary
from app.domain.search import MAX_WORDS, indexed_words, matches, search_words, short_words
from app.reader import fts_match
from app.web.live import View

HOSTILE = [
    '"',
    '""',
    'green" OR "x',
    "sku:MUG",
    "NEAR(a b)",
    "tote*",
    "^mug",
    "a AND OR NOT",
    "(((",
    "-mug +tote",
    "'; DROP TABLE items; --",
    "\\%_",
    "{sku name}: x",
    "\x00nul",
]


def test_the_words_of_a_search_are_folded_deduplicated_and_bounded() -> None:
    assert search_words("  Green   TOTE green ") == ("green", "tote")
    assert search_words(None) == () and search_words("   ") == ()
    assert len(search_words(" ".join(f"w{n}" for n in range(30)))) == MAX_WORDS


def test_every_word_must_be_in_the_sku_or_the_name() -> None:
    words = search_words("green tote")
    assert matches(words, "TOTE-01", "Green bag")  # one word in each
    assert matches(words, "X", "Tote bag, green")  # in any order
    assert not matches(words, "TOTE-01", "Blue bag")  # one word missing
    assert matches(search_words("ree"), "X", "Green")  # a part of a word
    assert matches((), "anything", "at all")


def test_short_words_are_kept_apart_from_the_indexed_ones() -> None:
    words = search_words("a tote xl")
    assert indexed_words(words) == ("tote",)
    assert short_words(words) == ("a", "xl")


def test_a_full_text_query_quotes_every_word() -> None:
    assert fts_match(("green", "tote")) == '"green" AND "tote"'
    assert fts_match(('ab"c',)) == '"ab""c"'


@pytest.mark.parametrize("text", HOSTILE)
def test_no_input_breaks_the_full_text_query(text: str) -> None:
    """Each hostile search runs against a real trigram index and finds only what contains it."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(sku, name, tokenize='trigram')")
    odd = "holds " + text.replace("\x00", "") + " inside"  # SQLite text ends at a NUL
    rows = [("MUG-1", "Green mug"), ("TOTE-1", "Tote bag"), ("ODD", odd)]
    conn.executemany("INSERT INTO t (sku, name) VALUES (?, ?)", rows)
    words = indexed_words(search_words(text))
    if not words:
        return
    found = {sku for (sku,) in conn.execute("SELECT sku FROM t WHERE t MATCH ?", (fts_match(words),))}
    assert found == {sku for sku, name in rows if matches(words, sku, name)}
    assert "ODD" in found


def test_the_live_dashboard_filters_by_the_same_rule() -> None:
    def item(sku: str, name: str) -> ItemSummary:
        return ItemSummary("i", sku, name, "", 1, 0, 1, 1, "t", "t", None)

    view = View(kind="dashboard", q="  Green TOTE ")
    assert view.matches(item("TOTE-01", "Green bag"))
    assert view.matches(item("X", "Tote bag, green"))
    assert not view.matches(item("MUG-1", "Green mug"))
    assert View(kind="dashboard").matches(item("ANY", "thing"))
