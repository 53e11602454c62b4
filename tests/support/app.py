"""Build settings and in-process applications for tests, with real SQLite files."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from app.auth.roles import Role
from app.auth.users import UserStore
from app.settings import Settings, load_settings

PASSWORD = "correct-horse-battery"
USERS = {"admin": Role.ADMIN, "manager": Role.MANAGER, "clerk": Role.CLERK, "viewer": Role.VIEWER}
JWT_SECRET = "test-secret-" + "x" * 40


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "INVENTORY_DATA_DIR": str(data_dir),
        "INVENTORY_JWT_SECRET": JWT_SECRET,
        "INVENTORY_LOCATIONS": "MAIN,S001,S002",
        "INVENTORY_LOG_LEVEL": "WARNING",
        "INVENTORY_ORPHAN_WAIT": "2",
        "INVENTORY_RETRY_BASE": "0.01",
        "INVENTORY_RETRY_MAX": "0.2",
    }
    env.update(extra)
    return env


def kafka_env(bootstrap: str, **extra: str) -> dict[str, str]:
    return {
        "INVENTORY_KAFKA_BOOTSTRAP": bootstrap,
        "INVENTORY_KAFKA_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}.",
        **extra,
    }


def settings_for(env: dict[str, str]) -> Settings:
    return load_settings(env)


async def create_users(settings: Settings) -> None:
    store = UserStore(settings.users_db)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await store.open()
    try:
        existing = {user.username for user in await store.list()}
        for name, role in USERS.items():
            if name not in existing:
                await store.add(name, role, PASSWORD)
    finally:
        await store.close()


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def item_body(sku: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"sku": sku or f"SKU-{uuid.uuid4().hex[:8]}", "name": "Test item", **fields}
