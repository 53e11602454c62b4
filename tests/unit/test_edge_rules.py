"""The pure parts of the edge rules: JSON nesting on the bytes, and the login limiter's memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.auth.login_limits import LoginLimiter, LoginRefused
from app.http.json_guard import nesting_exceeds
from app.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("body", "deeper_than_3"),
    [
        (b"[[[]]]", False),
        (b"[[[[]]]]", True),
        (b'{"a":{"b":{"c":{"d":1}}}}', True),
        (b'{"a":{"b":{"c":1}}}', False),
        (b'{"name":"[[[[[[[[{{{{"}', False),  # brackets inside a string do not nest
        (b'{"name":"a\\"[[[[[[["}', False),  # nor after an escaped quote
        (b"[[],[],[],[],[],[],[]]", False),  # many openings, little depth
        (b"sku=%5B%5B%5B%5B&name=x", False),
    ],
)
def test_nesting_is_measured_on_the_bytes(body: bytes, deeper_than_3: bool) -> None:
    assert nesting_exceeds(body, 3) is deeper_than_3


def test_the_limit_is_inclusive_and_agrees_with_the_json_parser() -> None:
    for depth in range(1, 40):
        body = json.dumps(json.loads("[" * depth + "]" * depth)).encode()
        assert nesting_exceeds(body, 32) is (depth > 32)


async def test_a_spray_of_usernames_and_addresses_keeps_the_limiter_bounded() -> None:
    limiter = LoginLimiter(10, max_keys=1_000)

    async def wrong() -> None:
        return None

    for n in range(20_000):
        await limiter.attempt(f"user{n}", f"10.0.{n % 250}.{n // 250 % 250}", wrong)
    assert limiter.tracked_keys() <= 3 * 1_000


async def test_the_pair_limit_refuses_before_the_password_is_checked() -> None:
    limiter = LoginLimiter(3)
    checks = 0

    async def wrong() -> None:
        nonlocal checks
        checks += 1
        return None

    for _ in range(3):
        assert await limiter.attempt("admin", "10.0.0.1", wrong) is None
    with pytest.raises(LoginRefused) as refused:
        await limiter.attempt("admin", "10.0.0.1", wrong)
    assert refused.value.retry_after > 0
    assert checks == 3

    async def right() -> str:
        return "admin"

    assert await limiter.attempt("admin", "10.0.0.2", right) == "admin"


def test_edge_settings_have_defaults_and_name_the_variable_when_bad(tmp_path: Path) -> None:
    base = {"INVENTORY_JWT_SECRET": "s" * 40, "INVENTORY_DATA_DIR": str(tmp_path)}
    settings = load_settings(base)
    assert (settings.max_header_bytes, settings.max_headers, settings.max_request_line_bytes) == (16384, 100, 8192)
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds, settings.json_max_depth) == (10, 30, 32)
    assert settings.trusted_proxies == () and settings.metrics_token == ""
    chosen = load_settings(
        base | {"INVENTORY_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16", "INVENTORY_HEADER_TIMEOUT": "2"}
    )
    assert chosen.trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16") and chosen.header_timeout_seconds == 2
    for name, value in (
        ("INVENTORY_TRUSTED_PROXIES", "proxy.local"),
        ("INVENTORY_HEADER_TIMEOUT", "0"),
        ("INVENTORY_MAX_HEADER_BYTES", "10"),
        ("INVENTORY_JSON_MAX_DEPTH", "1"),
    ):
        with pytest.raises(ConfigError, match=name):
            load_settings(base | {name: value})
