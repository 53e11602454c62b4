"""The accounts as the listener serves them to its nodes (docs/scaling.md): users.db as a whole
file, and the writing methods of the user and wall-link stores as calls. A node keeps a copy of
the file to read (logins, token checks) and sends every change here, so users.db has one writer;
the node's side is app/system/accounts_remote.py.

``GET /internal/accounts`` answers a consistent copy made with SQLite's online backup API. Its
revision (header ``X-Accounts-Revision``, also the ``ETag``) is the ``revision`` row of users.db:
every change to a user, a logged-out session or a wall link bumps it in the same transaction
(app/auth/users.py, app/auth/kiosk.py), so it covers all of them, and it is read from the copy
itself, so it names exactly what the copy holds. ``If-None-Match`` with it: 304 and no body.

``POST /internal/accounts/call`` runs one allowed writing method of the listener's own store,
``{"target": "users"|"kiosk", "method": ..., "args": {...}}``, and answers ``{"result": ...}``,
or the store's refusal in the one error shape with ``X-Accounts-Error`` naming the exception, so
the node raises the same exception the store would have raised.

Both answer only the deployment's own processes (app/http/internal.py), and in JSON: the one
error shape, never a page.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency

from app.auth.kiosk import KioskLinkError, KioskLinks
from app.auth.roles import Role
from app.auth.users import UserError, UserStore
from app.domain.catalogue import FieldError
from app.http.auth import PUBLIC
from app.http.errors import ApiError, error_body, field_errors
from app.http.internal import INTERNAL_PATH, require_internal
from app.settings import Settings
from app.system.users_controller import user_error

ACCOUNTS_PATH = f"{INTERNAL_PATH}/accounts"
REVISION_HEADER = "X-Accounts-Revision"
# Names the store's exception a refused call raised (absent: the call itself was malformed).
ERROR_HEADER = "X-Accounts-Error"
MEDIA_TYPE = "application/vnd.sqlite3"
# One copy at a time: a crowd of starting nodes cannot fill the listener's disk.
_one_copy = asyncio.Lock()


# --- the calls: one closed struct of arguments per allowed method ----------------------------


@dataclass(frozen=True)
class Call:
    """An allowed method: the struct its arguments decode into, and how to call the store."""

    args: type[msgspec.Struct]
    run: Callable[[Any, Any], Awaitable[Any]]


class AddArgs(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    role: Role
    password: str
    locations: list[str] = []
    known_locations: list[str] | None = None


class SetLocationsArgs(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    locations: list[str]
    known_locations: list[str] | None = None


class UpdateArgs(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    role: Role | None = None
    locations: list[str] | None = None
    disabled: bool | None = None
    known_locations: list[str] | None = None


class SetPasswordArgs(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    password: str


class SetRoleArgs(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    role: Role


class SetDisabledArgs(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    disabled: bool


class RemoveArgs(msgspec.Struct, forbid_unknown_fields=True):
    username: str


class RevokeSessionArgs(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    session: str
    expires_at: int
    max_sessions: int


class CreateLinkArgs(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    locations: list[str]
    known: list[str]
    created_by: str
    expires_in_days: int | None = None
    now: float | None = None


class RevokeLinkArgs(msgspec.Struct, forbid_unknown_fields=True):
    link_id: str


def _known(codes: list[str] | None) -> tuple[str, ...] | None:
    return tuple(codes) if codes is not None else None


def _users_calls() -> dict[str, Call]:
    return {
        "add": Call(
            AddArgs,
            lambda s, a: s.add(
                a.username, a.role, a.password, locations=a.locations, known_locations=_known(a.known_locations)
            ),
        ),
        "set_locations": Call(
            SetLocationsArgs,
            lambda s, a: s.set_locations(a.username, a.locations, known_locations=_known(a.known_locations)),
        ),
        "update": Call(
            UpdateArgs,
            lambda s, a: s.update(
                a.username,
                role=a.role,
                locations=a.locations,
                disabled=a.disabled,
                known_locations=_known(a.known_locations),
            ),
        ),
        "set_password": Call(SetPasswordArgs, lambda s, a: s.set_password(a.username, a.password)),
        "set_role": Call(SetRoleArgs, lambda s, a: s.set_role(a.username, a.role)),
        "set_disabled": Call(SetDisabledArgs, lambda s, a: s.set_disabled(a.username, a.disabled)),
        "remove": Call(RemoveArgs, lambda s, a: s.remove(a.username)),
        "revoke_session": Call(
            RevokeSessionArgs,
            lambda s, a: s.revoke_session(a.username, a.session, a.expires_at, max_sessions=a.max_sessions),
        ),
    }


def _kiosk_calls() -> dict[str, Call]:
    return {
        "create": Call(
            CreateLinkArgs,
            lambda s, a: s.create(
                a.name,
                a.locations,
                known=a.known,
                created_by=a.created_by,
                expires_in_days=a.expires_in_days,
                now=a.now,
            ),
        ),
        "revoke": Call(RevokeLinkArgs, lambda s, a: s.revoke(a.link_id)),
    }


Target = Literal["users", "kiosk"]
# The allow-list: the writing methods of UserStore and KioskLinks, nothing else.
CALLS: dict[str, dict[str, Call]] = {"users": _users_calls(), "kiosk": _kiosk_calls()}


class CallBody(msgspec.Struct, forbid_unknown_fields=True):
    target: Target
    method: str
    args: dict[str, Any] = {}


class BadCall(ValueError):
    """A call outside the allow-list, or arguments that do not fit the method."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def decode_call(body: bytes) -> tuple[Target, Call, Any]:
    """The call a request body asks for: its target, the allowed method, and its decoded
    arguments (Role enums, lists of codes...). BadCall for anything else."""
    try:
        call = msgspec.json.decode(body, type=CallBody)
    except msgspec.ValidationError as exc:
        raise BadCall("body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadCall("body", f"not valid JSON: {exc}") from None
    allowed = CALLS[call.target].get(call.method)
    if allowed is None:
        raise BadCall("method", f"{call.target}.{call.method} is not a call the listener takes")
    try:
        args = msgspec.convert(call.args, allowed.args)
    except msgspec.ValidationError as exc:
        raise BadCall("args", str(exc)) from None
    return call.target, allowed, args


def store_error(exc: UserError | KioskLinkError) -> ApiError:
    """A store's refusal in the one error shape the admin API gives it (users_controller's
    mapping for users, the kiosk API's field error for links), naming the exception."""
    if isinstance(exc, UserError):
        api = user_error(exc)
    else:
        api = ApiError(400, "the request is invalid", details=field_errors([FieldError(exc.field, exc.message)]))
    api.headers = {**api.headers, ERROR_HEADER: type(exc).__name__}
    return api


def _error(api: ApiError) -> Response[Any]:
    """JSON for every caller: /internal/ is no page, so the page-style answers (a login
    redirect for a 401) of the shared handler do not fit it."""
    return Response(error_body(api.error, api.message, api.details), status_code=api.status, headers=api.headers)


# --- the copy ----------------------------------------------------------------------------------


def copy_accounts(source: Path, target: Path) -> int:
    """Copy users.db with SQLite's online backup (one step, one read transaction: the state of
    one commit) into a self-contained file (no WAL beside it); returns the copy's revision."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=5)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")
        row = dst.execute("SELECT value FROM revision WHERE id = 1").fetchone()
        return int(row[0]) if row else 0
    finally:
        dst.close()
        src.close()


def _copied(source: Path, directory: Path) -> tuple[bytes, int]:
    handle, name = tempfile.mkstemp(prefix="accounts-", suffix=".db", dir=directory)
    os.close(handle)
    path = Path(name)
    try:
        revision = copy_accounts(source, path)
        return path.read_bytes(), revision
    finally:
        path.unlink(missing_ok=True)


def etag(revision: int) -> str:
    return f'"{revision}"'


class AccountsInternalController(Controller):
    path = ACCOUNTS_PATH
    opt = {PUBLIC: True}
    include_in_schema = False

    @get("/")
    async def accounts(
        self, request: Request[Any, Any, Any], users: NamedDependency[UserStore], settings: NamedDependency[Settings]
    ) -> Response[Any]:
        try:
            require_internal(request, settings)
        except ApiError as exc:
            return _error(exc)
        # The cheap check first: an unchanged revision needs no copy.
        current = etag(await users.revision())
        if request.headers.get("if-none-match") == current:
            return Response(b"", status_code=304, headers={"ETag": current})
        async with _one_copy:
            content, revision = await asyncio.to_thread(_copied, settings.users_db, settings.data_dir)
        if request.headers.get("if-none-match") == etag(revision):
            return Response(b"", status_code=304, headers={"ETag": etag(revision)})
        return Response(
            content,
            media_type=MEDIA_TYPE,
            headers={REVISION_HEADER: str(revision), "ETag": etag(revision), "Cache-Control": "no-store"},
        )

    @post("/call", status_code=200)
    async def call(
        self,
        request: Request[Any, Any, Any],
        users: NamedDependency[UserStore],
        kiosk_links: NamedDependency[KioskLinks],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        try:
            require_internal(request, settings)
        except ApiError as exc:
            return _error(exc)
        try:
            target, allowed, args = decode_call(await request.body())
        except BadCall as exc:
            return _error(ApiError(400, "the call is invalid", details=[{"field": exc.field, "message": exc.message}]))
        store: UserStore | KioskLinks = users if target == "users" else kiosk_links
        try:
            result = await allowed.run(store, args)
        except (UserError, KioskLinkError) as exc:
            return _error(store_error(exc))
        return Response(msgspec.json.encode({"result": result}), media_type="application/json")
