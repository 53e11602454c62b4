"""Session fixtures for the real Kafka broker and Redis, shared by tests/ and e2e/ (each
conftest imports them)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.services import KafkaBroker, RedisServer, free_port, free_port_pair


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The project's own single-node broker (kafka/broker.sh); INVENTORY_TEST_KAFKA names one
    that already runs."""
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
