"""Settings: bad configuration stops the start with a message naming the variable."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from app.settings import ConfigError, load_settings


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"INVENTORY_DATA_DIR": str(tmp_path), **values}


def test_defaults_run_embedded_with_a_generated_dev_secret(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path))
    assert settings.embedded and settings.redis_url is None
    assert settings.cache_ttl_seconds == 300
    assert (settings.changes_retention_seconds, settings.dedup_retention_seconds) == (86_400, 604_800)
    assert settings.default_location == "MAIN"
    assert len(settings.jwt_secret) >= 32
    # the same secret next time: every role on the machine shares it
    assert load_settings(env(tmp_path)).jwt_secret == settings.jwt_secret
    assert (tmp_path / ".jwt-secret").stat().st_mode & 0o077 == 0


def _secret_after_barrier(data_dir: str, barrier: threading.Barrier) -> str:
    barrier.wait()
    return load_settings({"INVENTORY_DATA_DIR": data_dir}).jwt_secret


def test_roles_starting_together_all_get_the_same_whole_dev_secret(tmp_path: Path) -> None:
    # `inventory dev` starts three roles on a fresh directory at once; a secret read while
    # another role was still writing it came back empty and every login failed.
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(6) as pool:
        for attempt in range(15):
            barrier = manager.Barrier(6)
            data_dir = str(tmp_path / str(attempt))
            secrets = pool.starmap(_secret_after_barrier, [(data_dir, barrier)] * 6)
            assert len(set(secrets)) == 1 and len(secrets[0]) >= 32, secrets
    assert sorted(p.name for p in (tmp_path / "0").iterdir()) == [".jwt-secret"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INVENTORY_CACHE_TTL", "soon"),
        ("INVENTORY_CACHE_TTL", "-5"),
        ("INVENTORY_ENV", "staging"),
        ("INVENTORY_KAFKA_BOOTSTRAP", "not a host"),
        ("INVENTORY_REDIS_URL", "localhost:6379"),
        ("INVENTORY_LOG_LEVEL", "LOUD"),
        ("INVENTORY_LOCATIONS", "MAIN,bad code"),
        ("INVENTORY_DEFAULT_LOCATION", "NOWHERE"),
        ("INVENTORY_JWT_SECRET", "short"),
        ("INVENTORY_ORPHAN_WAIT", "nan"),
        ("INVENTORY_CHANGES_RETENTION", "0"),
        ("INVENTORY_DEDUP_RETENTION", "a week"),
        ("INVENTORY_DEDUP_RETENTION", "3600"),  # shorter than an Idempotency-Key lives
        ("INVENTORY_HOT_READS_MB", "-1"),
        ("INVENTORY_HOT_READS_MB", "lots"),
    ],
)
def test_a_bad_value_names_its_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(env(tmp_path, **{name: value}))


def test_prod_refuses_a_missing_or_development_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be set"):
        load_settings(env(tmp_path, INVENTORY_ENV="prod"))
    with pytest.raises(ConfigError, match="development secret"):
        load_settings(env(tmp_path, INVENTORY_ENV="prod", INVENTORY_JWT_SECRET="dev-" + "x" * 40))
    assert load_settings(env(tmp_path, INVENTORY_ENV="prod", INVENTORY_JWT_SECRET="p" * 40)).env == "prod"


def test_locations_are_upper_cased_and_the_first_is_the_default(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path, INVENTORY_LOCATIONS="s001, main"))
    assert settings.locations == ("S001", "MAIN") and settings.default_location == "S001"


def test_hot_reads_are_held_in_mib_and_zero_turns_them_off(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).hot_reads_bytes == 32 * 1024 * 1024
    assert load_settings(env(tmp_path, INVENTORY_HOT_READS_MB="0")).hot_reads_bytes == 0
