"""``inventory serve --workers N`` (app/ops/workers.py): only for roles that keep nothing another
process needs; the running workers are tested in tests/integration/test_hot_reads.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main


@pytest.mark.parametrize("role", ["command", "listener", "all"])
def test_workers_are_refused_for_roles_with_state_of_their_own(role: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--role", role, "--workers", "2"]) == 2
    assert "--workers above 1 is for the roles query" in capsys.readouterr().err


def test_workers_and_a_shared_port_do_not_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--role", "query", "--workers", "2", "--shared-port", "9999"]) == 2
    assert "do not go together" in capsys.readouterr().err


def test_zero_workers_is_refused() -> None:
    assert main(["serve", "--role", "query", "--workers", "0"]) == 2


def test_a_node_is_refused_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVENTORY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INVENTORY_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("INVENTORY_LISTENER_URL", "http://127.0.0.1:9")
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--role", "query", "--workers", "2"])
    assert stopped.value.code == 2
    assert "not for a node" in capsys.readouterr().err
