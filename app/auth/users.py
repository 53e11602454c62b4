"""Users, their roles and the locations they may act at, kept in their own SQLite file and
managed from the command line, the admin API (app/system/users_controller.py) and the People
page (app/web/people.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from app.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.clock import utc_now
from app.domain.rules import LOCATION_PATTERN, normalise_location
from app.sqlitefiles import open_read_write

# Every process keeps each user's epoch in memory (app/auth/revocation.py): this bounds it.
MAX_USERS = 100_000
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- Bumped by every change that must end the user's tokens (app/auth/revocation.py).
    epoch INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    -- Comma-separated location codes the user may act at; '' = every location.
    locations TEXT NOT NULL DEFAULT ''
);
-- Sessions ended before their token expired (logout), kept until that expiry.
CREATE TABLE IF NOT EXISTS revoked_sessions (
    session TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
-- One row: bumped with every change above, so other processes reload only when it moved.
CREATE TABLE IF NOT EXISTS revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO revision (id, value) VALUES (1, 0);
"""

# Columns added after the first release: a users.db written by it gains them on open.
ADDED_COLUMNS = (
    ("epoch", "INTEGER NOT NULL DEFAULT 0"),
    ("disabled", "INTEGER NOT NULL DEFAULT 0"),
    ("locations", "TEXT NOT NULL DEFAULT ''"),
)
# A user limited to more stores than this is better left unlimited; it also bounds the token.
MAX_USER_LOCATIONS = 1000
# An admin who keeps the deployment manageable: enabled, and limited to no location.
_KEEPER = "role = 'admin' AND disabled = 0 AND locations = ''"


class UserError(ValueError):
    """Bad input for a user (a short password, a bad name or location): the caller's mistake.
    ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UnknownUser(UserError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user {username!r}")
        self.username = username


class UserExists(UserError):
    def __init__(self, username: str) -> None:
        super().__init__(f"user {username!r} already exists")
        self.username = username


class LastAdmin(UserError):
    """The change would leave nobody able to manage users and every location."""

    def __init__(self, username: str) -> None:
        super().__init__(
            f"{username!r} is the last enabled admin with every location; make another user such an admin first"
        )
        self.username = username


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    created_at: str
    disabled: bool = False
    # The locations the user may act at, sorted; empty: every location.
    locations: tuple[str, ...] = ()


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise UserError("username must be 2-32 characters of a-z 0-9 . _ - starting with a letter or digit", "username")
    return username


def check_locations(codes: Iterable[str], known: Collection[str] | None = None) -> tuple[str, ...]:
    """Location codes as typed (any case, spaces, repeats) in stored form, sorted; every one must
    be a well-formed code and, when the caller knows the configured locations, one of them."""
    clean = sorted({normalise_location(code) for code in codes if code.strip()})
    bad = [code for code in clean if not LOCATION_PATTERN.match(code)]
    if bad:
        raise UserError(f"not location codes: {', '.join(bad)}", "locations")
    if known is not None:
        unknown = [code for code in clean if code not in known]
        if unknown:
            raise UserError(f"unknown locations: {', '.join(unknown)}", "locations")
    if len(clean) > MAX_USER_LOCATIONS:
        raise UserError(f"at most {MAX_USER_LOCATIONS} locations; leave it empty for every location", "locations")
    return tuple(clean)


def _stored(locations: tuple[str, ...]) -> str:
    return ",".join(locations)


def _loaded(text: str | None) -> tuple[str, ...]:
    return tuple(code for code in (text or "").split(",") if code)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {MIN_PASSWORD_LENGTH} characters", "password")
    if len(password) > 1024:
        raise UserError("password must be at most 1024 characters", "password")
    return password


class UserStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self._conn = await open_read_write(self.path)
        await self._conn.executescript(SCHEMA)
        async with self._conn.execute("PRAGMA table_info(users)") as cursor:
            columns = {row[1] for row in await cursor.fetchall()}
        for name, declaration in ADDED_COLUMNS:
            if name not in columns:
                with contextlib.suppress(aiosqlite.OperationalError):  # another process added it first
                    await self._conn.execute(f"ALTER TABLE users ADD COLUMN {name} {declaration}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("user store is not open")
        return self._conn

    async def add(
        self,
        username: str,
        role: Role,
        password: str,
        *,
        locations: Iterable[str] = (),
        known_locations: Collection[str] | None = None,
    ) -> User:
        check_username(username)
        check_password(password)
        codes = check_locations(locations, known_locations)
        if await self.count() >= MAX_USERS:
            raise UserError(f"there are {MAX_USERS} users already; remove some first")
        now = utc_now()
        password_hash = await asyncio.to_thread(hash_password, password)  # slow on purpose
        try:
            await self._db.execute(
                "INSERT INTO users (username, password_hash, role, created_at, updated_at, locations) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (username, password_hash, role.value, now, now, _stored(codes)),
            )
        except aiosqlite.IntegrityError:
            raise UserExists(username) from None
        await self._db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
        return User(username, role, now, locations=codes)

    async def _keepers(self) -> int:
        async with self._db.execute(f"SELECT COUNT(*) FROM users WHERE {_KEEPER}") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _change(self, username: str, assignments: str, params: tuple[object, ...]) -> None:
        """Update a user and end every token issued before (a new epoch), in one transaction.

        The last admin check runs inside it: BEGIN IMMEDIATE takes the write lock first, so two
        concurrent changes (each demoting one of two admins) run one after the other and the
        second sees the first's result."""
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            keepers = await self._keepers()
            cursor = await db.execute(
                f"UPDATE users SET {assignments}, epoch = epoch + 1, updated_at = ? WHERE username = ?",
                (*params, utc_now(), username),
            )
            if cursor.rowcount == 0:
                raise UnknownUser(username)
            # Only a change that takes away the last one is refused: a users.db without any
            # such admin (users made on the command line) can still be edited.
            if keepers > 0 and await self._keepers() == 0:
                raise LastAdmin(username)
            await db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def get(self, username: str) -> User | None:
        async with self._db.execute(
            "SELECT username, role, created_at, disabled, locations FROM users WHERE username = ?", (username,)
        ) as cursor:
            row = await cursor.fetchone()
        return _user(row) if row is not None else None

    async def set_locations(
        self, username: str, locations: Iterable[str], *, known_locations: Collection[str] | None = None
    ) -> tuple[str, ...]:
        """Limit the user to these locations (empty: every location). Its tokens end: they carry
        the old list."""
        codes = check_locations(locations, known_locations)
        await self._change(username, "locations = ?", (_stored(codes),))
        return codes

    async def update(
        self,
        username: str,
        *,
        role: Role | None = None,
        locations: Iterable[str] | None = None,
        disabled: bool | None = None,
        known_locations: Collection[str] | None = None,
    ) -> User:
        """Change any of role, locations and disabled at once: one transaction, one new epoch."""
        assignments: list[str] = []
        params: list[object] = []
        if role is not None:
            assignments.append("role = ?")
            params.append(role.value)
        if locations is not None:
            assignments.append("locations = ?")
            params.append(_stored(check_locations(locations, known_locations)))
        if disabled is not None:
            assignments.append("disabled = ?")
            params.append(1 if disabled else 0)
        if assignments:
            await self._change(username, ", ".join(assignments), tuple(params))
        user = await self.get(username)
        if user is None:
            raise UnknownUser(username)
        return user

    async def set_password(self, username: str, password: str) -> None:
        check_password(password)
        password_hash = await asyncio.to_thread(hash_password, password)
        await self._change(username, "password_hash = ?", (password_hash,))

    async def set_role(self, username: str, role: Role) -> None:
        await self._change(username, "role = ?", (role.value,))

    async def set_disabled(self, username: str, disabled: bool) -> None:
        """A disabled user cannot log in and every token it holds is refused; enabling it again
        does not bring those tokens back (the epoch moved on)."""
        await self._change(username, "disabled = ?", (1 if disabled else 0,))

    async def remove(self, username: str) -> None:
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            keepers = await self._keepers()
            cursor = await db.execute("DELETE FROM users WHERE username = ?", (username,))
            if cursor.rowcount == 0:
                raise UnknownUser(username)
            if keepers > 0 and await self._keepers() == 0:
                raise LastAdmin(username)
            await db.execute("DELETE FROM revoked_sessions WHERE username = ?", (username,))
            await db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def revoke_session(self, username: str, session: str, expires_at: int, *, max_sessions: int) -> None:
        """End one session (logout) until its token would have expired anyway. When the list is
        full, end every session of the user instead (a new epoch): safe, and the list stays bounded."""
        db = self._db
        now = int(time.time())
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (now,))
            async with db.execute("SELECT COUNT(*) FROM revoked_sessions") as cursor:
                row = await cursor.fetchone()
            if row is not None and int(row[0]) >= max_sessions:
                await db.execute("UPDATE users SET epoch = epoch + 1 WHERE username = ?", (username,))
            else:
                await db.execute(
                    "INSERT OR IGNORE INTO revoked_sessions (session, username, expires_at) VALUES (?, ?, ?)",
                    (session, username, expires_at),
                )
            await db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def revision(self) -> int:
        async with self._db.execute("SELECT value FROM revision WHERE id = 1") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def epochs(self) -> dict[str, tuple[int, bool]]:
        """Every user's epoch and whether it is disabled."""
        async with self._db.execute("SELECT username, epoch, disabled FROM users") as cursor:
            return {name: (int(epoch), bool(disabled)) for name, epoch, disabled in await cursor.fetchall()}

    async def revoked_sessions(self) -> set[str]:
        async with self._db.execute(
            "SELECT session FROM revoked_sessions WHERE expires_at >= ?", (int(time.time()),)
        ) as cursor:
            return {row[0] for row in await cursor.fetchall()}

    async def list(self) -> list[User]:
        async with self._db.execute(
            "SELECT username, role, created_at, disabled, locations FROM users ORDER BY username"
        ) as cursor:
            return [_user(row) for row in await cursor.fetchall()]

    async def count(self) -> int:
        async with self._db.execute("SELECT COUNT(*) FROM users") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def authenticate(self, username: str, password: str) -> Principal | None:
        async with self._db.execute(
            "SELECT password_hash, role, epoch, disabled, locations FROM users WHERE username = ?",
            (username.lower(),),
        ) as cursor:
            row = await cursor.fetchone()
        stored_hash, role, epoch, disabled, locations = (
            (row[0], row[1], int(row[2]), bool(row[3]), _loaded(row[4])) if row else (None, None, 0, False, ())
        )
        # Argon2 is slow on purpose: run it off the event loop.
        ok = await asyncio.to_thread(verify_password, stored_hash, password)
        if not ok or role is None or disabled:
            return None
        return Principal(username.lower(), Role(role), epoch=epoch, locations=frozenset(locations))


def _user(row: aiosqlite.Row | tuple[object, ...]) -> User:
    name, role, created, disabled, locations = tuple(row)
    return User(str(name), Role(str(role)), str(created), bool(disabled), _loaded(str(locations or "")))
