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

Kiosk links (read-only wall links, app/auth/kiosk.py) are in the same snapshot: every link's
secret hash, locations, expiry and whether it was revoked. A wall's cookie is checked against it
(one SHA-256, remembered per cookie until the next reload), so revoking a link ends its walls on
every process within about a second, and a link survives restarts (the cookie is all it needs).

``ended`` says why a principal no longer holds (expired, signed-out, revoked): the live streams
ask it about every second and end with that reason (app/http/stream_end.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from app.auth.kiosk import KIOSK_PREFIX, MAX_LINKS, KioskLinks, KioskRefused, LinkState, split_credential
from app.auth.kiosk import secret_matches as kiosk_secret_matches
from app.auth.roles import Role
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
# A link unknown to the snapshot makes it reload, but not more often than this.
CATCH_UP_SECONDS = 0.25


class Revocations:
    def __init__(
        self, users: UserStore, refresh_seconds: float = REFRESH_SECONDS, links: KioskLinks | None = None
    ) -> None:
        self._users = users
        self._links_store = links
        self._links: dict[str, LinkState] = {}
        # Link cookies already checked against the current snapshot: cleared on every reload.
        self._kiosk_principals: dict[str, Principal] = {}
        self._refresh_seconds = refresh_seconds
        self._epochs: dict[str, tuple[int, bool]] = {}
        self._revoked: frozenset[str] = frozenset()
        self._revision = -1
        self._reloaded_at = 0.0
        self._refreshed_at = -CATCH_UP_SECONDS
        # Whole seconds (like a token's ``iat``) at which the snapshot was last known current,
        # minus one for the rounding: tokens issued since may be for users it does not know.
        self._current_from = 0
        self.loaded = False
        # Users (and later kiosk links) in the snapshot: users.db holds at most MAX_USERS.
        track_size("revocation_principals", MAX_USERS, lambda: len(self._epochs))
        track_size("revoked_sessions", MAX_REVOKED_SESSIONS, lambda: len(self._revoked))
        track_size("kiosk_links", MAX_LINKS, lambda: len(self._links))

    def allows(self, principal: Principal) -> bool:
        if principal.is_kiosk:
            return self.ended(principal) is None
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
            links = await self._links_store.states() if self._links_store is not None else {}
            self._epochs, self._revoked, self._revision = epochs, revoked, revision
            self._links, self._kiosk_principals = links, {}
            self._reloaded_at = time.monotonic()
        self._current_from = int(started) - 1
        self._refreshed_at = time.monotonic()
        self.loaded = True

    async def catch_up(self) -> bool:
        """Refresh now, unless that was done very recently: for a wall link this process does not
        know yet (made on another process less than a second ago). At most a few times a second,
        so made-up link ids cost no more than that. True if it refreshed."""
        if time.monotonic() - self._refreshed_at < CATCH_UP_SECONDS:
            return False
        await self.refresh()
        return True

    def ended(self, principal: Principal, now: float | None = None) -> str | None:
        """Why the principal no longer holds: "expired", "signed-out" (its session was ended),
        "revoked" (its user changed, was disabled or removed; its wall link was revoked); None
        while it holds. Memory only: the live streams ask it every second."""
        moment = time.time() if now is None else now
        if principal.is_kiosk:
            state = self._links.get(principal.username.removeprefix(KIOSK_PREFIX))
            return "revoked" if state is None else state.refusal(moment)
        if principal.expires_at and moment >= principal.expires_at:
            return "expired"
        if principal.session and principal.session in self._revoked:
            return "signed-out"
        return None if self.allows(principal) else "revoked"

    def kiosk_principal(self, credential: str, now: float | None = None) -> Principal:
        """The wall a link's cookie (``<id>.<secret>``) stands for; KioskRefused when it is forged,
        unknown, revoked or expired."""
        moment = time.time() if now is None else now
        known = self._kiosk_principals.get(credential)
        if known is None:
            link_id, secret = split_credential(credential)
            state = self._links.get(link_id)
            if state is None or not kiosk_secret_matches(secret, state.secret_hash):
                raise KioskRefused("invalid")
            known = Principal(
                f"{KIOSK_PREFIX}{link_id}",
                Role.VIEWER,
                session=link_id,
                expires_at=state.expires_at or 0,
                locations=state.locations,
                kind="kiosk",
            )
            if len(self._kiosk_principals) >= MAX_LINKS:
                self._kiosk_principals.clear()
            self._kiosk_principals[credential] = known
        reason = self.ended(known, moment)
        if reason is not None:
            raise KioskRefused(reason)
        return known

    def knows_link(self, link_id: str) -> bool:
        return link_id in self._links

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
