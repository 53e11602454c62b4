"""The split deployment for the browser tests, started once per session.

Kafka (kafka/broker.sh) and redis-server run on free ports under the session's temporary
directory; the command, listener and query roles run as separate processes on them. The pages
come from the query service (the browser's base URL) and post their forms cross-origin to the
command service. Tests share the deployment, so each one works on items of its own (a unique tag
in the SKU, also used as the dashboard's search) and never relies on the others' data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from e2e.support.api import Api
from e2e.support.ui import LoggedIn, log_in
from tests.support.services import RedisServer
from tests.support.stack import Stack, split_stack

E2E = Path(__file__).resolve().parent
ARTIFACTS = E2E / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Outcomes travel through Kafka and the listener: give assertions room on a busy machine.
expect.set_options(timeout=20_000)


def pytest_configure(config: pytest.Config) -> None:
    # A failing test leaves a screenshot next to the other artifacts (unless told otherwise).
    if config.getoption("--screenshot", default=None) == "off":
        config.option.screenshot = "only-on-failure"
    if config.getoption("--output", default=None) == "test-results":
        config.option.output = str(ARTIFACTS / "failures")


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("data")
    logs = tmp_path_factory.mktemp("logs")
    with split_stack(kafka_bootstrap, redis_server.url, data_dir, logs) as running:
        yield running


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[Api]:
    client = Api(stack)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    """Pages are served by the query service."""
    return stack.query.url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium; no browser is downloaded."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def tag() -> str:
    """A marker unique to the test: SKUs start with it and the dashboard searches for it."""
    return f"E2E{uuid.uuid4().hex[:8].upper()}"


@pytest.fixture
def logged_in(new_context: Callable[..., BrowserContext]) -> LoggedIn:
    """A page in a browser context of its own (its own cookies), logged in as user, on next_path."""

    def open_page(user: str, next_path: str = "/", **context_args: Any) -> Page:
        page = new_context(**context_args).new_page()
        log_in(page, user, next_path)
        return page

    return open_page


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
