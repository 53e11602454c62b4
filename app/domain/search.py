"""What a search for items means, in one place: the dashboard's list (SQLite's full-text index,
app/reader.py) and the live dashboard (app/web/live.py) both follow it.

A search is a few words; an item matches when every word is found in its SKU or its name, as
a part of a word or a whole one, whatever the letter case ("green tote" finds "Tote bag, green").
"""

from __future__ import annotations

# A search box is for a few words: more than this many are ignored, as is any word's tail past
# WORD_MAX (no SKU or name word is that long, and it bounds the query).
MAX_WORDS = 8
WORD_MAX = 64
# The full-text index is built on three-letter pieces (trigrams): a shorter word cannot be
# looked up in it and is matched by a scan of the rows the longer words left (app/reader.py).
INDEXED_MIN = 3


def search_words(query: str | None) -> tuple[str, ...]:
    """The words of a search, case-folded, each once, in the order typed."""
    words: list[str] = []
    # Control characters are dropped: no SKU or name has them, and a NUL ends SQLite's query text.
    printable = "".join(ch if ch.isprintable() else " " for ch in query or "")
    for raw in printable.split():
        word = raw.casefold()[:WORD_MAX]
        if word not in words:
            words.append(word)
        if len(words) == MAX_WORDS:
            break
    return tuple(words)


def matches(words: tuple[str, ...], sku: str, name: str) -> bool:
    """Every word is part of the SKU or of the name (no words: everything matches)."""
    sku, name = sku.casefold(), name.casefold()
    return all(word in sku or word in name for word in words)


def indexed_words(words: tuple[str, ...]) -> tuple[str, ...]:
    """The words the full-text index can look up."""
    return tuple(word for word in words if len(word) >= INDEXED_MIN)


def short_words(words: tuple[str, ...]) -> tuple[str, ...]:
    """The words too short for the index."""
    return tuple(word for word in words if len(word) < INDEXED_MIN)
