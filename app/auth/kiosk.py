"""Kiosk links: named, read-only wall links for a TV in a shop, with no login on the TV.

A link is a row of ``kiosk_links`` in ``users.db``: its id, a name, the locations its wall may
show, who made it and when, an optional expiry and, once revoked, when. The link's URL carries
``<id>.<secret>``; the secret is 32 random bytes and only its SHA-256 is stored. A fast hash is
enough here because the secret is not a password: 256 random bits cannot be guessed or looked up
in a dictionary, so the slow, salted hash passwords need (app/auth/passwords.py) would buy
nothing and cost every request. The secret is shown once, when the link is made.

Every change bumps the ``revision`` row users.py keeps, so each process's snapshot
(app/auth/revocation.py) reloads the links within about a second: verifying a link's cookie on a
request is a dictionary lookup and one SHA-256, never a query.

``kiosk_may`` is the one rule of what a wall link may open (app/http/auth.py applies it to every
request): its wall page, the wall's fragments and the wall's stream, for its own locations.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

import aiosqlite

from app.clock import utc_now
from app.sqlitefiles import open_read_write

# Every process keeps every link in memory (app/auth/revocation.py): this bounds it.
MAX_LINKS = 10_000
NAME_MAX = 80
MAX_EXPIRY_DAYS = 3650
LINK_ID = re.compile(r"^[0-9a-f]{16}$")
SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, URL-safe base64 without padding
KIOSK_PREFIX = "kiosk:"

SCHEMA = """
CREATE TABLE IF NOT EXISTS kiosk_links (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- Comma-separated location codes, as configured when the link was made.
    locations TEXT NOT NULL,
    -- SHA-256 (hex) of the secret; the secret itself is never stored.
    secret_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- Unix seconds; NULL: the link does not expire.
    expires_at INTEGER,
    revoked_at TEXT
);
-- Shared with users.py: bumped by every change so other processes reload their snapshot.
CREATE TABLE IF NOT EXISTS revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO revision (id, value) VALUES (1, 0);
"""

MESSAGES = {
    "revoked": "This wall link was revoked. Ask an admin for a new link.",
    "expired": "This wall link expired. Ask an admin for a new link.",
    "invalid": "This wall link is not valid. Ask an admin for a new link.",
}
WALL_ONLY = "a wall link can only show its wall"


class KioskLinkError(ValueError):
    """Bad input for a new link: ``field`` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class KioskRefused(Exception):
    """A link cookie or URL that does not open a wall: ``reason`` is revoked, expired or invalid."""

    def __init__(self, reason: str) -> None:
        super().__init__(MESSAGES[reason])
        self.reason = reason
        self.message = MESSAGES[reason]


@dataclass(frozen=True)
class KioskLink:
    id: str
    name: str
    locations: tuple[str, ...]
    created_by: str
    created_at: str
    expires_at: int | None = None
    revoked_at: str | None = None

    def state(self, now: float | None = None) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at:
            return "expired"
        return "active"

    @property
    def path(self) -> str:
        """Where the wall opens, without the secret (which only the creator ever sees)."""
        return wall_path(self.locations)


@dataclass(frozen=True)
class LinkState:
    """What a process keeps of a link to verify its cookie: no name, no secret."""

    secret_hash: str
    locations: frozenset[str]
    expires_at: int | None
    revoked: bool

    def refusal(self, now: float) -> str | None:
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def split_credential(credential: str) -> tuple[str, str]:
    """``<id>.<secret>`` (a link's URL or cookie) as its two parts; KioskRefused when malformed."""
    link_id, _, secret = credential.strip().partition(".")
    if not LINK_ID.match(link_id) or not SECRET.match(secret):
        raise KioskRefused("invalid")
    return link_id, secret


def wall_path(locations: Iterable[str]) -> str:
    return "/wall?location=" + ",".join(sorted(locations))


def link_id_of(username: str) -> str | None:
    return username[len(KIOSK_PREFIX) :] if username.startswith(KIOSK_PREFIX) else None


# --- what a wall link may open ---------------------------------------------------------------

WALL_METHODS = frozenset({"GET", "HEAD"})


def requested_locations(query_string: str) -> set[str]:
    """Every location the request names: ``location=A,B`` and repeated ``location=`` alike."""
    values = parse_qs(query_string, keep_blank_values=True).get("location", [])
    return {code.strip().upper() for value in values for code in value.split(",") if code.strip()}


def kiosk_may(method: str, path: str, query_string: str, locations: frozenset[str]) -> bool:
    """Whether a wall link may make this request: read its wall (``/wall``), the wall's fragments
    (``/ui/wall/...``) and the wall's stream (``/ui/stream?view=wall``), naming only its own
    locations (a request naming none would show the default location, which may not be its)."""
    if method.upper() not in WALL_METHODS:
        return False
    if path.startswith("/static/"):
        return True
    if path == "/ui/stream":
        if parse_qs(query_string).get("view", [""])[0] != "wall":
            return False
    elif path != "/wall" and not path.startswith("/ui/wall/"):
        return False
    asked = requested_locations(query_string)
    return bool(asked) and asked <= locations


# --- the store -------------------------------------------------------------------------------


def _row(row: tuple[object, ...]) -> KioskLink:
    link_id, name, locations, created_by, created_at, expires_at, revoked_at = row
    return KioskLink(
        id=str(link_id),
        name=str(name),
        locations=tuple(str(locations).split(",")),
        created_by=str(created_by),
        created_at=str(created_at),
        expires_at=int(expires_at) if isinstance(expires_at, int) else None,
        revoked_at=str(revoked_at) if revoked_at else None,
    )


COLUMNS = "id, name, locations, created_by, created_at, expires_at, revoked_at"


class KioskLinks:
    """The ``kiosk_links`` table of users.db, on a connection of its own."""

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
            raise RuntimeError("kiosk link store is not open")
        return self._conn

    async def create(
        self,
        name: str,
        locations: Iterable[str],
        *,
        known: Iterable[str],
        created_by: str,
        expires_in_days: int | None = None,
        now: float | None = None,
    ) -> tuple[KioskLink, str]:
        """A new link and its secret: the only time the secret exists outside the URL."""
        name = " ".join(name.split())
        if not name:
            raise KioskLinkError("name", "is required")
        if len(name) > NAME_MAX:
            raise KioskLinkError("name", f"must be at most {NAME_MAX} characters")
        codes = sorted({code.strip().upper() for code in locations if code.strip()})
        if not codes:
            raise KioskLinkError("locations", "choose at least one location")
        unknown = [code for code in codes if code not in set(known)]
        if unknown:
            raise KioskLinkError("locations", f"unknown location {', '.join(unknown)}; known: {', '.join(known)}")
        if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise KioskLinkError("expires_in_days", f"must be between 1 and {MAX_EXPIRY_DAYS} days, or empty")
        moment = time.time() if now is None else now
        expires_at = int(moment) + expires_in_days * 86400 if expires_in_days is not None else None
        link_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        created_at = utc_now()
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute("SELECT COUNT(*) FROM kiosk_links") as cursor:
                row = await cursor.fetchone()
            if row is not None and int(row[0]) >= MAX_LINKS:
                raise KioskLinkError("name", f"there are {MAX_LINKS} wall links already; delete revoked ones first")
            await db.execute(
                f"INSERT INTO kiosk_links ({COLUMNS}, secret_hash) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                (link_id, name, ",".join(codes), created_by, created_at, expires_at, hash_secret(secret)),
            )
            await db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return KioskLink(link_id, name, tuple(codes), created_by, created_at, expires_at), secret

    async def revoke(self, link_id: str) -> KioskLink | None:
        """Revoke a link (again is fine: the first revocation's time stays); None if unknown."""
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            cursor = await db.execute(
                "UPDATE kiosk_links SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (utc_now(), link_id)
            )
            if cursor.rowcount:
                await db.execute("UPDATE revision SET value = value + 1 WHERE id = 1")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return await self.get(link_id)

    async def get(self, link_id: str) -> KioskLink | None:
        async with self._db.execute(f"SELECT {COLUMNS} FROM kiosk_links WHERE id = ?", (link_id,)) as cursor:
            row = await cursor.fetchone()
        return _row(tuple(row)) if row else None

    async def list(self) -> list[KioskLink]:
        async with self._db.execute(f"SELECT {COLUMNS} FROM kiosk_links ORDER BY created_at DESC, id") as cursor:
            return [_row(tuple(row)) for row in await cursor.fetchall()]

    async def states(self) -> dict[str, LinkState]:
        """Every link as the snapshot keeps it (revoked ones too: their cookies are told so)."""
        async with self._db.execute(
            "SELECT id, secret_hash, locations, expires_at, revoked_at FROM kiosk_links"
        ) as cursor:
            return {
                str(link_id): LinkState(
                    str(secret_hash),
                    frozenset(str(locations).split(",")),
                    int(expires_at) if expires_at is not None else None,
                    revoked_at is not None,
                )
                for link_id, secret_hash, locations, expires_at, revoked_at in await cursor.fetchall()
            }
