"""Users and their roles, kept in their own SQLite file and managed from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from app.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.clock import utc_now
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
    disabled INTEGER NOT NULL DEFAULT 0
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
)


class UserError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    created_at: str
    disabled: bool = False


def check_username(username: str) -> str:
    if not USERNAME.match(username):
        raise UserError("username must be 2-32 characters of a-z 0-9 . _ - starting with a letter or digit")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise UserError("password must be at most 1024 characters")
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

    async def add(self, username: str, role: Role, password: str) -> User:
        check_username(username)
        check_password(password)
        if await self.count() >= MAX_USERS:
            raise UserError(f"there are {MAX_USERS} users already; remove some first")
        now = utc_now()
        try:
            await self._db.execute(
                "INSERT INTO users (username, password_hash, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (username, hash_password(password), role.value, now, now),
            )
        except aiosqlite.IntegrityError:
            raise UserError(f"user {username!r} already exists") from None
        await self._db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
        return User(username, role, now)

    async def _change(self, username: str, assignments: str, params: tuple[object, ...]) -> None:
        """Update a user and end every token issued before (a new epoch), in one transaction."""
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            cursor = await db.execute(
                f"UPDATE users SET {assignments}, epoch = epoch + 1, updated_at = ? WHERE username = ?",
                (*params, utc_now(), username),
            )
            if cursor.rowcount == 0:
                raise UserError(f"no user {username!r}")
            await db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def set_password(self, username: str, password: str) -> None:
        check_password(password)
        await self._change(username, "password_hash = ?", (hash_password(password),))

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
            cursor = await db.execute("DELETE FROM users WHERE username = ?", (username,))
            if cursor.rowcount == 0:
                raise UserError(f"no user {username!r}")
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
            "SELECT username, role, created_at, disabled FROM users ORDER BY username"
        ) as cursor:
            return [
                User(name, Role(role), created, bool(disabled))
                for name, role, created, disabled in await cursor.fetchall()
            ]

    async def count(self) -> int:
        async with self._db.execute("SELECT COUNT(*) FROM users") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def authenticate(self, username: str, password: str) -> Principal | None:
        async with self._db.execute(
            "SELECT password_hash, role, epoch, disabled FROM users WHERE username = ?", (username.lower(),)
        ) as cursor:
            row = await cursor.fetchone()
        stored_hash, role, epoch, disabled = (
            (row[0], row[1], int(row[2]), bool(row[3])) if row else (None, None, 0, False)
        )
        # Argon2 is slow on purpose: run it off the event loop.
        ok = await asyncio.to_thread(verify_password, stored_hash, password)
        if not ok or role is None or disabled:
            return None
        return Principal(username.lower(), Role(role), epoch=epoch)
