"""The hot reads' held answers (app/queries/answer_cache.py) and which requests may take one
(app/queries/hot_reads.py)."""

from __future__ import annotations

import uuid
from typing import Any

from app.queries.answer_cache import Answer, AnswerCache
from app.queries.hot_reads import hot_key
from app.queries.service import FreshnessFloor

HEADERS = [(b"content-type", b"application/json")]


def _answer(body: bytes = b"{}", seq: int | None = None) -> Answer:
    return Answer(HEADERS, body, seq)


def _scope(path: str, query: bytes = b"", method: str = "GET") -> Any:
    return {"type": "http", "method": method, "path": path, "query_string": query, "headers": []}


def test_an_item_answer_is_held_until_a_newer_version_is_known() -> None:
    floor = FreshnessFloor()
    answers = AnswerCache(1 << 20)
    floor.watch(answers.forget)
    floor.raise_to("a", 1)
    key = ("stock", "a")
    answers.keep(key, answers.begin(key), _answer(b'{"version":1}'))
    assert answers.get(key, seq=5) is not None
    assert answers.get(key, seq=9) is not None  # other items' changes do not end it
    floor.raise_to("a", 1)  # not newer: nothing happens
    assert answers.get(key, seq=9) is not None
    floor.raise_to("a", 2)
    assert answers.get(key, seq=9) is None


def test_a_fill_that_raced_with_a_change_is_not_kept() -> None:
    answers = AnswerCache(1 << 20)
    key = ("stock", "a")
    fill = answers.begin(key)
    answers.forget("a")  # the feed announced a newer version while the old one was read
    answers.keep(key, fill, _answer(b'{"version":1}'))
    assert answers.get(key, seq=1) is None
    # Two fills at once: only the later one may keep its answer.
    first, second = answers.begin(key), answers.begin(key)
    answers.keep(key, first, _answer(b"first"))
    assert answers.get(key, seq=1) is None
    answers.keep(key, second, _answer(b"second"))
    held = answers.get(key, seq=1)
    assert held is not None and held.body == b"second"


def test_a_list_answer_holds_for_its_sequence_only() -> None:
    answers = AnswerCache(1 << 20)
    key = ("list", "page=1")
    answers.keep(key, answers.begin(key), _answer(b"[]", seq=7))
    assert answers.get(key, seq=7) is not None
    assert answers.get(key, seq=8) is None
    assert answers.get(key, seq=7) is None  # dropped, not resurrected
    assert len(answers) == 0 and answers.bytes == 0


def test_held_answers_are_bounded_in_bytes_least_recently_used_out() -> None:
    answers = AnswerCache(10_000)
    for n in range(100):
        key = ("stock", str(n))
        answers.keep(key, answers.begin(key), _answer(b"x" * 500))
    assert answers.bytes <= 10_000
    assert answers.get(("stock", "99"), seq=0) is not None
    assert answers.get(("stock", "0"), seq=0) is None
    big = ("stock", "big")
    answers.keep(big, answers.begin(big), _answer(b"x" * 5_000))  # above an eighth of the bound
    assert answers.get(big, seq=0) is None


def test_only_the_hot_reads_qualify() -> None:
    item = str(uuid.uuid4())
    items = "/api/v1/inventory/items"
    assert hot_key(_scope(f"{items}/{item}/stock")) == ("stock", item)
    assert hot_key(_scope(items, b"page=2&page_size=20")) == ("list", "page=2&page_size=20")
    assert hot_key(_scope(items)) == ("list", "")
    assert hot_key(_scope(f"{items}/{item}/stock", b"location=S001")) is None
    assert hot_key(_scope(f"{items}/{item.upper()}/stock")) is None  # another spelling: the app's path
    assert hot_key(_scope(f"{items}/not-an-id/stock")) is None
    assert hot_key(_scope(f"{items}/{item}/stock", method="HEAD")) is None
    assert hot_key(_scope(f"{items}/{item}")) is None
    assert hot_key(_scope(items, b"min_seq=4")) is None
