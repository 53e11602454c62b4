"""Session-wide real services (started lazily, once) and per-test fresh state."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.bootstrap import Container, ServiceRole, build_container
from app.http.application import create_app
from tests.support.app import base_env, create_users, settings_for
from tests.support.services import KafkaBroker, RedisServer, free_port, free_port_pair


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real broker from kafka/; CI may start one itself and pass INVENTORY_TEST_KAFKA."""
    given = os.environ.get("INVENTORY_TEST_KAFKA")
    if given:
        yield given
        return
    broker = KafkaBroker(free_port_pair(), tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@asynccontextmanager
async def running_app(
    env: dict[str, str], role: ServiceRole = "all"
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    """An in-process application with its lifespan (background tasks) running."""
    settings = settings_for(env)
    await create_users(settings)
    container = build_container(settings, role)
    async with AsyncTestClient(app=create_app(container), timeout=40) as client:
        yield client, container


@pytest.fixture
def embedded_env(data_dir: Path) -> dict[str, str]:
    return base_env(data_dir)
