"""Login limits against a real server: X-Forwarded-For is believed only from named proxies, an
attacker's wrong passwords do not lock the real user out, and a flood of logins from one
address does not keep another address from logging in. Other addresses are real: Linux accepts
connections from any 127.0.0.0/8 address, so a client binds 127.0.0.2 as its source."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.app import PASSWORD, base_env
from tests.support.processes import ServiceProcess

LOGIN = "/api/v1/auth/login"


def _server(root: Path, **extra: str) -> ServiceProcess:
    env = base_env(root / "data", INVENTORY_ADMIN_PASSWORD=PASSWORD, INVENTORY_LOGIN_ATTEMPTS_PER_MINUTE="5", **extra)
    return ServiceProcess("all", env, root / "all.log").start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServiceProcess]:
    service = _server(tmp_path)
    try:
        yield service
    finally:
        service.stop()


def _client(server: ServiceProcess, source: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address=source), timeout=60)


def test_a_rotating_x_forwarded_for_from_an_untrusted_address_is_still_limited(server: ServiceProcess) -> None:
    """The probe: every attempt with another username and another X-Forwarded-For, never a 429."""
    with _client(server) as client:
        statuses = [
            client.post(
                LOGIN,
                json={"username": f"user{n}", "password": "wrong-guess"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(1, 41)
        ]
    # The address is the connection's: 5N = 25 attempts a minute from it, whatever it claims.
    assert statuses[:25] == [401] * 25 and set(statuses[25:]) == {429}, statuses
    with _client(server) as client:
        same_user = [
            client.post(
                LOGIN,
                json={"username": "admin", "password": "wrong-guess"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(1, 4)
        ]
    assert same_user == [429] * 3


def test_x_forwarded_for_is_believed_from_a_trusted_proxy(tmp_path: Path) -> None:
    service = _server(tmp_path, INVENTORY_TRUSTED_PROXIES="127.0.0.1")
    try:
        with _client(service) as client:
            statuses = [
                client.post(
                    LOGIN,
                    json={"username": "admin", "password": "wrong-guess"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                ).status_code
                for n in range(1, 12)
            ]
            # Each client address behind the proxy has its own count...
            assert statuses == [401] * 11
            for _ in range(5):
                client.post(
                    LOGIN, json={"username": "admin", "password": "x" * 9}, headers={"X-Forwarded-For": "198.51.100.7"}
                )
            refused = client.post(
                LOGIN, json={"username": "admin", "password": PASSWORD}, headers={"X-Forwarded-For": "198.51.100.7"}
            )
            # ...and one client's failures are that client's.
            assert refused.status_code == 429
            assert (
                client.post(
                    LOGIN, json={"username": "admin", "password": PASSWORD}, headers={"X-Forwarded-For": "198.51.100.8"}
                ).status_code
                == 200
            )
        # An address that is not the proxy cannot claim to be another client.
        with _client(service, "127.0.0.2") as other:
            for _ in range(5):
                other.post(
                    LOGIN, json={"username": "admin", "password": "x" * 9}, headers={"X-Forwarded-For": "192.0.2.1"}
                )
            spoofed = other.post(
                LOGIN, json={"username": "admin", "password": "x" * 9}, headers={"X-Forwarded-For": "192.0.2.2"}
            )
            assert spoofed.status_code == 429
    finally:
        service.stop()


def test_wrong_passwords_from_an_attacker_do_not_lock_the_user_out(server: ServiceProcess) -> None:
    with _client(server, "127.0.0.1") as attacker:
        statuses = [
            attacker.post(LOGIN, json={"username": "admin", "password": f"guess-{n}"}).status_code for n in range(30)
        ]
        assert statuses.count(429) >= 20, statuses
        assert attacker.post(LOGIN, json={"username": "admin", "password": PASSWORD}).status_code == 429
    with _client(server, "127.0.0.2") as user:
        answer = user.post(LOGIN, json={"username": "admin", "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        assert user.get(
            "/api/v1/inventory/items", headers={"Authorization": f"Bearer {answer.json()['token']}"}
        ).is_success


def test_a_login_flood_from_one_address_does_not_keep_another_from_logging_in(server: ServiceProcess) -> None:
    """The probe: 40 threads guessing from one address made a real login wait for their
    password checks. Now the flood's checks queue behind each other, one at a time, and the
    real login takes a free slot: while it is answered, the flood gets at most a few answers
    (a count of answers in between, not a time)."""
    answered: list[tuple[int, float]] = []
    refused_once = threading.Event()

    def guess(n: int) -> None:
        with _client(server, "127.0.0.1") as client:
            answer = client.post(LOGIN, json={"username": f"user{n % 7}", "password": "wrong-guess"})
        answered.append((answer.status_code, time.monotonic()))
        if answer.status_code == 429:
            refused_once.set()

    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [pool.submit(guess, n) for n in range(120)]
        try:
            # Once one guess was refused, the address's quota (25) is queued or being checked.
            assert refused_once.wait(60)
            sent = time.monotonic()
            with _client(server, "127.0.0.2") as user:
                answer = user.post(LOGIN, json={"username": "admin", "password": PASSWORD})
            done = time.monotonic()
        finally:
            for future in futures:
                future.result()
    assert answer.status_code == 200, answer.text
    checked_meanwhile = [at for status, at in answered if status == 401 and sent < at < done]
    checked_after = [at for status, at in answered if status == 401 and at >= done]
    assert len(checked_meanwhile) <= 4, (len(checked_meanwhile), len(checked_after))
    assert checked_after, "the flood was over before the real login was answered"
    assert {status for status, _ in answered} == {401, 429} and len(answered) == 120
