"""Wall links (app/auth/kiosk.py) on a real users.db in a temporary directory: the store, the
hashed secret, the snapshot that verifies a link's cookie, and what a wall link may open."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.auth.kiosk import (
    MESSAGES,
    KioskLinkError,
    KioskLinks,
    KioskRefused,
    kiosk_may,
    requested_locations,
    split_credential,
)
from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.users import UserStore

KNOWN = ("MAIN", "S001", "S002")


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[UserStore, KioskLinks, Revocations]]:
    users = UserStore(tmp_path / "users.db")
    links = KioskLinks(tmp_path / "users.db")
    await users.open()
    await links.open()
    revocations = Revocations(users, links=links)
    await revocations.refresh()
    try:
        yield users, links, revocations
    finally:
        await links.close()
        await users.close()


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("users.db*"))


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute(sql).fetchall())


async def test_a_link_keeps_only_the_hash_of_its_secret(
    stores: tuple[UserStore, KioskLinks, Revocations], tmp_path: Path
) -> None:
    _, links, _ = stores
    link, secret = await links.create(" S001   TV ", ["s001"], known=KNOWN, created_by="admin")
    assert link.name == "S001 TV" and link.locations == ("S001",) and link.created_by == "admin"
    assert len(secret) == 43 and link.expires_at is None and link.state() == "active"
    stored = _rows(tmp_path / "users.db", "SELECT secret_hash, locations FROM kiosk_links")
    assert stored == [(hashlib.sha256(secret.encode()).hexdigest(), "S001")]
    # The secret is nowhere in the file (nor in its write-ahead log).
    assert not [file for file in _files(tmp_path) if secret.encode() in file.read_bytes()]
    listed = await links.list()
    assert [entry.id for entry in listed] == [link.id]
    assert secret not in repr(listed)


async def test_every_change_moves_the_revision_other_processes_watch(
    stores: tuple[UserStore, KioskLinks, Revocations],
) -> None:
    users, links, _ = stores
    before = await users.revision()
    link, _ = await links.create("Back office", ["MAIN"], known=KNOWN, created_by="admin")
    after_create = await users.revision()
    await links.revoke(link.id)
    assert before < after_create < await users.revision()


@pytest.mark.parametrize(
    ("name", "locations", "days", "field"),
    [
        ("", ["MAIN"], None, "name"),
        ("x" * 81, ["MAIN"], None, "name"),
        ("TV", [], None, "locations"),
        ("TV", ["MAIN", "NOWHERE"], None, "locations"),
        ("TV", ["MAIN"], 0, "expires_in_days"),
        ("TV", ["MAIN"], 3651, "expires_in_days"),
    ],
)
async def test_bad_input_makes_no_link(
    stores: tuple[UserStore, KioskLinks, Revocations], name: str, locations: list[str], days: int | None, field: str
) -> None:
    _, links, _ = stores
    with pytest.raises(KioskLinkError) as refused:
        await links.create(name, locations, known=KNOWN, created_by="admin", expires_in_days=days)
    assert refused.value.field == field
    assert await links.list() == []


async def test_the_snapshot_opens_a_wall_for_the_right_secret_only(
    stores: tuple[UserStore, KioskLinks, Revocations],
) -> None:
    _, links, revocations = stores
    link, secret = await links.create("Region", ["S002", "S001"], known=KNOWN, created_by="admin")
    await revocations.refresh()
    principal = revocations.kiosk_principal(f"{link.id}.{secret}")
    assert principal.is_kiosk and principal.role == Role.VIEWER
    assert principal.username == f"kiosk:{link.id}"
    assert principal.locations == frozenset({"S001", "S002"})
    assert revocations.ended(principal) is None

    forged = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for credential in (f"{link.id}.{forged}", f"{'0' * 16}.{secret}", "nonsense", f"{link.id}.", ""):
        with pytest.raises(KioskRefused) as refused:
            revocations.kiosk_principal(credential)
        assert refused.value.reason == "invalid"


async def test_a_revoked_link_is_refused_once_the_snapshot_reloads(
    stores: tuple[UserStore, KioskLinks, Revocations],
) -> None:
    _, links, revocations = stores
    link, secret = await links.create("TV", ["MAIN"], known=KNOWN, created_by="admin")
    await revocations.refresh()
    principal = revocations.kiosk_principal(f"{link.id}.{secret}")
    revoked = await links.revoke(link.id)
    assert revoked is not None and revoked.state() == "revoked"
    await revocations.refresh()
    assert revocations.ended(principal) == "revoked"
    assert not revocations.allows(principal)
    with pytest.raises(KioskRefused) as refused:
        revocations.kiosk_principal(f"{link.id}.{secret}")
    assert refused.value.reason == "revoked" and refused.value.message == MESSAGES["revoked"]
    # Revoking again keeps the first time; an unknown id is None.
    assert (await links.revoke(link.id)) == revoked
    assert await links.revoke("f" * 16) is None


async def test_a_link_with_an_expiry_ends_then(stores: tuple[UserStore, KioskLinks, Revocations]) -> None:
    _, links, revocations = stores
    now = time.time()
    link, secret = await links.create("TV", ["MAIN"], known=KNOWN, created_by="admin", expires_in_days=2, now=now)
    assert link.expires_at == int(now) + 2 * 86400
    await revocations.refresh()
    principal = revocations.kiosk_principal(f"{link.id}.{secret}", now=now)
    assert principal.expires_at == link.expires_at
    assert revocations.ended(principal, now=now + 86400) is None
    assert revocations.ended(principal, now=now + 2 * 86400 + 1) == "expired"
    with pytest.raises(KioskRefused) as refused:
        revocations.kiosk_principal(f"{link.id}.{secret}", now=now + 3 * 86400)
    assert refused.value.reason == "expired"


def test_a_credential_is_an_id_and_a_secret() -> None:
    assert split_credential("0123456789abcdef." + "a" * 43) == ("0123456789abcdef", "a" * 43)
    for bad in ("0123456789abcdef", "0123456789ABCDEF." + "a" * 43, "0123456789abcdef." + "a" * 42, "x.y"):
        with pytest.raises(KioskRefused):
            split_credential(bad)


OWN = frozenset({"S001", "S002"})


@pytest.mark.parametrize(
    ("method", "path", "query", "allowed"),
    [
        ("GET", "/wall", "location=S001", True),
        ("GET", "/wall", "location=S001,S002&rotate=20", True),
        ("GET", "/wall", "location=S001&location=S002", True),
        ("HEAD", "/wall", "location=s002", True),
        ("GET", "/ui/wall/tiles", "location=S001,S002&page=2", True),
        ("GET", "/ui/stream", "view=wall&location=S001", True),
        ("GET", "/static/app.js", "", True),
        # Another location, or none (the default location may not be the link's).
        ("GET", "/wall", "location=MAIN", False),
        ("GET", "/wall", "location=S001,MAIN", False),
        ("GET", "/wall", "", False),
        ("GET", "/ui/stream", "location=S001", False),
        ("GET", "/ui/stream", "view=dashboard&location=S001", False),
        # Anything but the wall: pages, the API, and every write.
        ("GET", "/", "location=S001", False),
        ("GET", "/events", "location=S001", False),
        ("GET", "/ui/tiles", "location=S001", False),
        ("GET", "/api/v1/inventory/items", "location=S001", False),
        ("GET", "/api/v1/inventory/stream", "location=S001", False),
        ("GET", "/kiosk-links", "", False),
        ("POST", "/wall", "location=S001", False),
        ("POST", "/ui/items", "", False),
        ("POST", "/api/v1/inventory/items", "", False),
        ("DELETE", "/api/v1/kiosk-links/0123456789abcdef", "", False),
        ("PUT", "/ui/wall/tiles", "location=S001", False),
    ],
)
def test_a_wall_link_may_only_read_its_wall(method: str, path: str, query: str, allowed: bool) -> None:
    assert kiosk_may(method, path, query, OWN) is allowed


def test_locations_are_read_from_every_location_parameter() -> None:
    assert requested_locations("location=s001,%20S002&location=MAIN&x=1") == {"S001", "S002", "MAIN"}
    assert requested_locations("view=wall") == set()
