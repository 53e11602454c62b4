"""users.db (app/auth/users.py) on a temporary file: locations, the last admin, epochs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.auth.roles import Role
from app.auth.users import LastAdmin, UnknownUser, UserError, UserExists, UserStore

PASSWORD = "correct-horse-battery"
KNOWN = ("MAIN", "S001", "S002")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[UserStore]:
    users = UserStore(tmp_path / "users.db")
    await users.open()
    try:
        yield users
    finally:
        await users.close()


async def epoch(store: UserStore, name: str) -> int:
    return (await store.epochs())[name][0]


async def test_a_user_limited_to_locations_logs_in_with_them(store: UserStore) -> None:
    added = await store.add("anna", Role.CLERK, PASSWORD, locations=["s002", " S001 ", "S001"], known_locations=KNOWN)
    assert added.locations == ("S001", "S002")
    principal = await store.authenticate("anna", PASSWORD)
    assert principal is not None
    assert principal.locations == frozenset({"S001", "S002"})
    assert principal.may_act_at("S001") and not principal.may_act_at("MAIN")
    assert [user.locations for user in await store.list()] == [("S001", "S002")]


async def test_no_locations_means_every_location(store: UserStore) -> None:
    await store.add("boss", Role.MANAGER, PASSWORD)
    principal = await store.authenticate("boss", PASSWORD)
    assert principal is not None and principal.locations == frozenset()


async def test_unknown_or_malformed_locations_are_refused(store: UserStore) -> None:
    with pytest.raises(UserError, match="unknown locations: S999") as unknown:
        await store.add("anna", Role.CLERK, PASSWORD, locations=["S001", "S999"], known_locations=KNOWN)
    assert unknown.value.field == "locations"
    with pytest.raises(UserError, match="not location codes"):
        await store.add("anna", Role.CLERK, PASSWORD, locations=["S 0/1"])
    assert await store.count() == 0
    await store.add("anna", Role.CLERK, PASSWORD)
    with pytest.raises(UserError, match="unknown locations"):
        await store.set_locations("anna", ["NOPE"], known_locations=KNOWN)


async def test_set_locations_ends_the_users_tokens(store: UserStore) -> None:
    await store.add("anna", Role.CLERK, PASSWORD)
    before = await epoch(store, "anna")
    assert await store.set_locations("anna", ["S001"], known_locations=KNOWN) == ("S001",)
    assert await epoch(store, "anna") == before + 1
    principal = await store.authenticate("anna", PASSWORD)
    assert principal is not None and principal.locations == frozenset({"S001"})
    await store.set_locations("anna", [])
    assert await epoch(store, "anna") == before + 2
    again = await store.authenticate("anna", PASSWORD)
    assert again is not None and again.locations == frozenset()


async def test_update_changes_several_things_in_one_epoch(store: UserStore) -> None:
    await store.add("anna", Role.CLERK, PASSWORD)
    before = await epoch(store, "anna")
    user = await store.update("anna", role=Role.MANAGER, locations=["S002"], disabled=True, known_locations=KNOWN)
    assert (user.role, user.locations, user.disabled) == (Role.MANAGER, ("S002",), True)
    assert await epoch(store, "anna") == before + 1
    assert await store.authenticate("anna", PASSWORD) is None  # disabled


async def test_unknown_and_existing_users(store: UserStore) -> None:
    await store.add("anna", Role.CLERK, PASSWORD)
    with pytest.raises(UserExists):
        await store.add("anna", Role.CLERK, PASSWORD)
    for change in (
        store.set_locations("nobody", ["S001"]),
        store.update("nobody", role=Role.ADMIN),
        store.set_password("nobody", PASSWORD),
        store.remove("nobody"),
    ):
        with pytest.raises(UnknownUser):
            await change


async def test_the_last_admin_with_every_location_cannot_be_removed_disabled_demoted_or_limited(
    store: UserStore,
) -> None:
    await store.add("root", Role.ADMIN, PASSWORD)
    await store.add("anna", Role.CLERK, PASSWORD)
    before = await epoch(store, "root")
    for change in (
        store.remove("root"),
        store.set_disabled("root", True),
        store.set_role("root", Role.MANAGER),
        store.set_locations("root", ["S001"]),
        store.update("root", disabled=True),
    ):
        with pytest.raises(LastAdmin, match="last enabled admin"):
            await change
    root = await store.get("root")
    assert root is not None and (root.role, root.disabled, root.locations) == (Role.ADMIN, False, ())
    assert await epoch(store, "root") == before  # nothing changed, no tokens ended
    # Other users and the admin's own password stay editable.
    await store.set_password("root", "another-long-password")
    await store.set_disabled("anna", True)


async def test_a_limited_or_disabled_admin_does_not_count(store: UserStore) -> None:
    await store.add("root", Role.ADMIN, PASSWORD)
    await store.add("store-admin", Role.ADMIN, PASSWORD, locations=["S001"])
    await store.add("old-admin", Role.ADMIN, PASSWORD)
    await store.set_disabled("old-admin", True)
    with pytest.raises(LastAdmin):
        await store.set_role("root", Role.VIEWER)
    # With a second admin with every location, the first one may go.
    await store.set_locations("store-admin", [])
    await store.set_role("root", Role.VIEWER)
    with pytest.raises(LastAdmin):
        await store.remove("store-admin")


async def test_two_concurrent_demotions_cannot_both_pass(tmp_path: Path) -> None:
    """Two processes (two connections), each demoting one of the two admins at once: one wins."""
    path = tmp_path / "users.db"
    first, second = UserStore(path), UserStore(path)
    await first.open()
    await second.open()
    try:
        await first.add("one", Role.ADMIN, PASSWORD)
        await first.add("two", Role.ADMIN, PASSWORD)
        results = await asyncio.gather(
            first.set_role("one", Role.CLERK), second.set_disabled("two", True), return_exceptions=True
        )
        assert sum(isinstance(result, LastAdmin) for result in results) == 1, results
        keepers = [user for user in await first.list() if user.role is Role.ADMIN and not user.disabled]
        assert len(keepers) == 1
    finally:
        await first.close()
        await second.close()


async def test_a_users_db_of_an_older_release_gains_the_locations_column(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        old.execute("INSERT INTO users VALUES ('old', 'x', 'clerk', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
    store = UserStore(path)
    await store.open()
    try:
        [user] = await store.list()
        assert (user.username, user.locations, user.disabled) == ("old", (), False)
        await store.set_locations("old", ["S001"])
        assert (await store.get("old")) is not None
        assert (await store.list())[0].locations == ("S001",)
    finally:
        await store.close()
