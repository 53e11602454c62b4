"""Accounts on a node (docs/scaling.md): a copy of the listener's users.db to read, and every
change sent to the listener, which alone writes users.db (app/system/accounts_internal.py).

``AccountsMirror`` pulls ``GET /internal/accounts`` at start (retrying until the listener
answers, unless a copy from an earlier run is there to serve meanwhile), then every second with
``If-None-Match`` (an unchanged revision costs a 304), and installs each new copy into the
node's own users.db with SQLite's backup API, through a connection it keeps open: the stores'
connections stay open and read the new state on their next query, and revocations
(app/auth/revocation.py) see the revision row move like on any process.

``NodeUserStore`` and ``NodeKioskLinks`` read the copy (inherited) and send every writing method
to ``POST /internal/accounts/call``, then pull at once: the node reads its own write; the other
nodes within about a second. A refusal comes back as the exception the store would have raised
here (so the controllers and pages are the same on every role); when the listener cannot be
reached, a write answers 503 with Retry-After and reads go on from the copy.

It lives beside the listener's side (not in app/auth) because a write the listener cannot take
is an HTTP answer (``unavailable``), which app/auth may not import.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import httpx
import msgspec

from app.auth.kiosk import KioskLink, KioskLinkError, KioskLinks
from app.auth.roles import Role
from app.auth.users import LastAdmin, UnknownUser, User, UserError, UserExists, UserStore
from app.http.errors import unavailable
from app.system.accounts_internal import ACCOUNTS_PATH, ERROR_HEADER, REVISION_HEADER, etag

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
# Pull without If-None-Match at least this often: a users.db restored on the listener may carry
# a revision the node already had.
FULL_PULL_SECONDS = 300.0
TIMEOUT = httpx.Timeout(10.0, read=60.0)
UNREACHABLE = "accounts are kept by the listener, which cannot be reached now; retry shortly"


class AccountsUnreachable(RuntimeError):
    """The listener did not hand over the accounts (down, restarting, or refusing)."""


class AccountsMirror:
    def __init__(
        self,
        listener_url: str,
        token: str,
        path: Path,
        *,
        interval: float = REFRESH_SECONDS,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.path = path
        self._interval = interval
        self._http = http or httpx.AsyncClient(
            base_url=listener_url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )
        # Installs one copy at a time; held across the download so a write's own pull cannot be
        # answered by a pull that started before the write.
        self._lock = asyncio.Lock()
        self._dest: sqlite3.Connection | None = None
        # The listener's revision the copy holds; None: unknown (pull without If-None-Match).
        self.revision: int | None = None
        self._full_at = 0.0
        self._failing = False

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the node's users.db and install the listener's accounts. Retries until the
        listener answers, unless a copy from an earlier run can be served meanwhile."""
        self._dest = await asyncio.to_thread(self._open)
        had_copy = await asyncio.to_thread(self._has_copy)
        delay = 0.2
        while True:
            try:
                await self._refresh(conditional=False)
                return
            except AccountsUnreachable as exc:
                if had_copy:
                    log.warning("accounts: %s; serving the copy from the last run until it answers", exc)
                    return
                log.warning("accounts: waiting for the listener: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._refresh(conditional=time.monotonic() - self._full_at < FULL_PULL_SECONDS)
            except Exception as exc:  # keep the copy; a later pull catches up
                if not self._failing:
                    log.warning("accounts: cannot refresh the copy (reads go on from it): %s", exc)
                self._failing = True
            else:
                if self._failing:
                    log.info("accounts: the listener answers again")
                self._failing = False

    async def close(self) -> None:
        await self._http.aclose()
        if self._dest is not None:
            self._dest.close()
            self._dest = None

    # --- pulling -----------------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Pull now; True when a new copy was installed. AccountsUnreachable when it failed."""
        return await self._refresh(conditional=True)

    async def _refresh(self, *, conditional: bool) -> bool:
        async with self._lock:
            headers = {"If-None-Match": etag(self.revision)} if conditional and self.revision is not None else {}
            try:
                response = await self._http.get(ACCOUNTS_PATH, headers=headers)
            except httpx.HTTPError as exc:
                raise AccountsUnreachable(f"listener unreachable: {exc!r}") from None
            if response.status_code == 304:
                return False
            if response.status_code != 200:
                raise AccountsUnreachable(f"listener answered {response.status_code}: {response.text[:200]}")
            revision = int(response.headers[REVISION_HEADER])
            await asyncio.to_thread(self._install, response.content)
            self.revision = revision
            if not conditional:
                self._full_at = time.monotonic()
            return True

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used from worker threads only, one at a time (under the lock).
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _has_copy(self) -> bool:
        assert self._dest is not None
        return self._dest.execute("SELECT 1 FROM sqlite_master WHERE name = 'users'").fetchone() is not None

    def _install(self, content: bytes) -> None:
        """The downloaded file into the node's users.db, with SQLite's backup API: one write
        transaction, so the stores' open connections see the old state or the new one."""
        if self._dest is None:
            raise AccountsUnreachable("the accounts copy is closed")
        handle, name = tempfile.mkstemp(prefix="accounts-incoming-", suffix=".db", dir=self.path.parent)
        incoming = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
            src = sqlite3.connect(f"file:{incoming}?mode=ro", uri=True)
            try:
                src.execute("SELECT value FROM revision WHERE id = 1").fetchone()  # a users.db, not junk
                src.backup(self._dest)
            finally:
                src.close()
        except sqlite3.DatabaseError as exc:
            raise AccountsUnreachable(f"the listener's copy could not be installed: {exc}") from None
        finally:
            incoming.unlink(missing_ok=True)

    # --- calls -------------------------------------------------------------------------------

    async def call(self, target: str, method: str, args: dict[str, Any]) -> Any:
        """Run a writing method on the listener's store, then pull, so this node reads its own
        write at once. Raises what the store raised; 503 (ApiError) when the listener is away."""
        body = msgspec.json.encode({"target": target, "method": method, "args": args})
        try:
            response = await self._http.post(
                f"{ACCOUNTS_PATH}/call", content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            log.warning("accounts: %s.%s not sent: %r", target, method, exc)
            raise unavailable(UNREACHABLE) from None
        if response.status_code == 200:
            result = msgspec.json.decode(response.content)["result"]
            try:
                await self.refresh()
            except AccountsUnreachable as exc:  # done on the listener; the next pull brings it
                log.warning("accounts: %s.%s done, but the copy was not refreshed: %s", target, method, exc)
            return result
        kind = response.headers.get(ERROR_HEADER)
        if kind:
            raise store_exception(kind, msgspec.json.decode(response.content))
        log.error("accounts: the listener refused %s.%s: %s %s", target, method, response.status_code, response.text)
        if response.status_code >= 500 or response.status_code in (401, 404):
            # Restarting, or not (yet) a listener of this deployment: retrying is all a node can do.
            raise unavailable(UNREACHABLE)
        raise RuntimeError(f"the listener refused {target}.{method}: {response.status_code}")


def store_exception(kind: str, body: dict[str, Any]) -> Exception:
    """The exception the listener's store raised, from its answer (app/system/accounts_internal.py
    ``store_error``): the one the local store would have raised."""
    message = str(body.get("message", ""))
    details = body.get("details")
    username = str(details.get("username", "")) if isinstance(details, dict) else ""
    first = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
    field = str(first.get("field", "")) or None
    match kind:
        case "UnknownUser":
            return UnknownUser(username)
        case "UserExists":
            return UserExists(username)
        case "LastAdmin":
            return LastAdmin(username)
        case "KioskLinkError":
            return KioskLinkError(field or "name", str(first.get("message", message)))
    return UserError(str(first.get("message", message)), None if field == "body" else field)


def _codes(codes: Iterable[str] | None) -> list[str] | None:
    return list(codes) if codes is not None else None


class NodeUserStore(UserStore):
    """Reads the node's copy; every change goes to the listener."""

    def __init__(self, path: Path, mirror: AccountsMirror) -> None:
        super().__init__(path)
        self._mirror = mirror

    async def _call(self, method: str, **args: Any) -> Any:
        return await self._mirror.call("users", method, args)

    async def add(
        self,
        username: str,
        role: Role,
        password: str,
        *,
        locations: Iterable[str] = (),
        known_locations: Collection[str] | None = None,
    ) -> User:
        result = await self._call(
            "add",
            username=username,
            role=role.value,
            password=password,
            locations=list(locations),
            known_locations=_codes(known_locations),
        )
        return msgspec.convert(result, User)

    async def set_locations(
        self, username: str, locations: Iterable[str], *, known_locations: Collection[str] | None = None
    ) -> tuple[str, ...]:
        result = await self._call(
            "set_locations", username=username, locations=list(locations), known_locations=_codes(known_locations)
        )
        return tuple(msgspec.convert(result, list[str]))

    async def update(
        self,
        username: str,
        *,
        role: Role | None = None,
        locations: Iterable[str] | None = None,
        disabled: bool | None = None,
        known_locations: Collection[str] | None = None,
    ) -> User:
        result = await self._call(
            "update",
            username=username,
            role=role.value if role is not None else None,
            locations=_codes(locations),
            disabled=disabled,
            known_locations=_codes(known_locations),
        )
        return msgspec.convert(result, User)

    async def set_password(self, username: str, password: str) -> None:
        await self._call("set_password", username=username, password=password)

    async def set_role(self, username: str, role: Role) -> None:
        await self._call("set_role", username=username, role=role.value)

    async def set_disabled(self, username: str, disabled: bool) -> None:
        await self._call("set_disabled", username=username, disabled=disabled)

    async def remove(self, username: str) -> None:
        await self._call("remove", username=username)

    async def revoke_session(self, username: str, session: str, expires_at: int, *, max_sessions: int) -> None:
        await self._call(
            "revoke_session", username=username, session=session, expires_at=expires_at, max_sessions=max_sessions
        )


class NodeKioskLinks(KioskLinks):
    """Reads the node's copy; every change goes to the listener."""

    def __init__(self, path: Path, mirror: AccountsMirror) -> None:
        super().__init__(path)
        self._mirror = mirror

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
        result = await self._mirror.call(
            "kiosk",
            "create",
            {
                "name": name,
                "locations": list(locations),
                "known": list(known),
                "created_by": created_by,
                "expires_in_days": expires_in_days,
                "now": now,
            },
        )
        return msgspec.convert(result, tuple[KioskLink, str])

    async def revoke(self, link_id: str) -> KioskLink | None:
        result = await self._mirror.call("kiosk", "revoke", {"link_id": link_id})
        return msgspec.convert(result, KioskLink | None)
