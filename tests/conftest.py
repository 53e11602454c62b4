"""Session-wide real services (started lazily, once) and per-test fresh state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.application import create_app
from app.bootstrap import Container, ServiceRole, build_container
from tests.support.app import base_env, create_users, settings_for


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
