"""Ending tokens before they expire: a user's epoch, and sessions ended by logout.

Every user row in ``users.db`` carries an ``epoch``, raised by every change that must end the
user's tokens (role changed, disabled or enabled, password reset; a removed user has no row at
all), and every token carries the epoch it was issued at (claim ``ep``) and its session id
(``jti``). A logout adds the session id to ``revoked_sessions`` until the token would have
expired anyway. Each process keeps a snapshot of both, refreshed every second when the
``revision`` row moved (every role shares the data directory, so the console command, a page
or another process changing a user is seen by all within about a second), and checks each
request against it in memory: a dictionary and a set lookup, nothing on the hot path touches
SQLite.

A token is refused when its session was ended, when it is older than its user's epoch, or when
its user is disabled or gone. A token *newer* than the snapshot (a higher epoch, or a user the
snapshot does not know yet) was issued after a change this process has not loaded yet, so it
is accepted; the next refresh decides.

Kiosk links (read-only wall links) will revoke the same way: a link is a row with its own id
and epoch, its token carries ``sub = "kiosk:<id>"`` and the epoch, and the snapshot loads links
into the same map; revoking a link raises its epoch or deletes its row.
"""

from __future__ import annotations

import asyncio
import logging
import time

from app.auth.tokens import Principal
from app.auth.users import MAX_USERS, UserStore
from app.metrics import track_size

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
# Reload everything at least this often, also when nothing changed: it drops expired sessions.
FULL_RELOAD_SECONDS = 30.0
# Sessions ended by logout and not expired yet, for every user together. Beyond it, a logout
# ends all of that user's sessions (a new epoch) instead of being listed.
MAX_REVOKED_SESSIONS = 50_000


class Revocations:
    def __init__(self, users: UserStore, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._users = users
        self._refresh_seconds = refresh_seconds
        self._epochs: dict[str, tuple[int, bool]] = {}
        self._revoked: frozenset[str] = frozenset()
        self._revision = -1
        self._reloaded_at = 0.0
        # Whole seconds (like a token's ``iat``) at which the snapshot was last known current,
        # minus one for the rounding: tokens issued since may be for users it does not know.
        self._current_from = 0
        self.loaded = False
        # Users (and later kiosk links) in the snapshot: users.db holds at most MAX_USERS.
        track_size("revocation_principals", MAX_USERS, lambda: len(self._epochs))
        track_size("revoked_sessions", MAX_REVOKED_SESSIONS, lambda: len(self._revoked))

    def allows(self, principal: Principal) -> bool:
        if principal.session and principal.session in self._revoked:
            return False
        known = self._epochs.get(principal.username)
        if known is None:
            # Removed, or added after the snapshot: only a token issued since can be the latter.
            return principal.issued_at >= self._current_from
        epoch, disabled = known
        if principal.epoch != epoch:
            # Older: ended. Newer: issued after a change this snapshot has not seen yet.
            return principal.epoch > epoch
        return not disabled

    async def refresh(self) -> None:
        """Reload the snapshot if users.db changed (or it is time for a full reload)."""
        started = time.time()
        revision = await self._users.revision()
        if revision != self._revision or time.monotonic() - self._reloaded_at >= FULL_RELOAD_SECONDS:
            epochs = await self._users.epochs()
            revoked = frozenset(await self._users.revoked_sessions())
            self._epochs, self._revoked, self._revision = epochs, revoked, revision
            self._reloaded_at = time.monotonic()
        self._current_from = int(started) - 1
        self.loaded = True

    async def end_session(self, principal: Principal) -> None:
        """Logout: the session's token is refused here at once, on other processes within seconds."""
        if not principal.session:
            return
        await self._users.revoke_session(
            principal.username, principal.session, principal.expires_at, max_sessions=MAX_REVOKED_SESSIONS
        )
        await self.refresh()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # keep the last snapshot; a later refresh catches up
                log.warning("could not refresh token revocations: %s", exc)
