"""Users and their roles, kept in their own SQLite file and managed from the command line."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from app.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.clock import utc_now
from app.sqlitefiles import open_read_write

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class UserError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    created_at: str


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
        now = utc_now()
        try:
            await self._db.execute(
                "INSERT INTO users (username, password_hash, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (username, hash_password(password), role.value, now, now),
            )
        except aiosqlite.IntegrityError:
            raise UserError(f"user {username!r} already exists") from None
        return User(username, role, now)

    async def set_password(self, username: str, password: str) -> None:
        check_password(password)
        cursor = await self._db.execute(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ?",
            (hash_password(password), utc_now(), username),
        )
        if cursor.rowcount == 0:
            raise UserError(f"no user {username!r}")

    async def set_role(self, username: str, role: Role) -> None:
        cursor = await self._db.execute(
            "UPDATE users SET role = ?, updated_at = ? WHERE username = ?", (role.value, utc_now(), username)
        )
        if cursor.rowcount == 0:
            raise UserError(f"no user {username!r}")

    async def remove(self, username: str) -> None:
        cursor = await self._db.execute("DELETE FROM users WHERE username = ?", (username,))
        if cursor.rowcount == 0:
            raise UserError(f"no user {username!r}")

    async def list(self) -> list[User]:
        async with self._db.execute("SELECT username, role, created_at FROM users ORDER BY username") as cursor:
            return [User(name, Role(role), created) for name, role, created in await cursor.fetchall()]

    async def count(self) -> int:
        async with self._db.execute("SELECT COUNT(*) FROM users") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def authenticate(self, username: str, password: str) -> Principal | None:
        async with self._db.execute(
            "SELECT password_hash, role FROM users WHERE username = ?", (username.lower(),)
        ) as cursor:
            row = await cursor.fetchone()
        stored_hash, role = (row[0], row[1]) if row else (None, None)
        # Argon2 is slow on purpose: run it off the event loop.
        ok = await asyncio.to_thread(verify_password, stored_hash, password)
        if not ok or role is None:
            return None
        return Principal(username.lower(), Role(role))
