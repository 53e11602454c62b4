"""The admin API for people: list, add, change (role, locations, disabled) and reset a password.
Served by every role, since users.db is shared by all of them; the People page
(app/web/people.py) makes the same changes through the same UserStore."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Response, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Schema
from litestar.params import FromPath, JSONBody

from app.auth.passwords import MIN_PASSWORD_LENGTH
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.auth.users import LastAdmin, UnknownUser, User, UserError, UserExists, UserStore
from app.http.auth import requires
from app.http.errors import ApiError, ErrorBody
from app.settings import Settings

Username = Annotated[
    str,
    # Letters in any case: the name is stored in lower case.
    msgspec.Meta(description="2-32 characters of a-z 0-9 . _ -", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,31}$"),
]
Password = Annotated[str, msgspec.Meta(description=f"at least {MIN_PASSWORD_LENGTH} characters", max_length=1024)]
Locations = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=16)]],
    msgspec.Meta(
        description="location codes the user may act at (configured ones); empty: every location",
        max_length=1000,
    ),
]


class UserBody(msgspec.Struct):
    """A user as the API shows it: never its password or hash."""

    username: str
    role: Role
    locations: Annotated[list[str], msgspec.Meta(description="empty: every location")]
    disabled: bool
    created_at: str


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    role: Role
    password: Password
    locations: Locations = []


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    role: Role | None = None
    locations: Locations | None = None
    disabled: bool | None = None


class NewPassword(msgspec.Struct, forbid_unknown_fields=True):
    password: Password


CLOSED_BODIES = (NewUser, UserChange, NewPassword)


def document_user_rules(app: Litestar, settings: Settings) -> None:
    """The configured location codes, as the document's only values for ``locations``, and the
    password's minimum length (which Litestar leaves out of the document)."""
    schemas = app.openapi_schema.components.schemas or {}
    for with_password in (NewUser.__name__, NewPassword.__name__):
        schema = schemas.get(with_password)
        password = schema.properties.get("password") if schema is not None and schema.properties else None
        if isinstance(password, Schema):
            password.min_length = MIN_PASSWORD_LENGTH
    for with_locations in (NewUser.__name__, UserChange.__name__):
        schema = schemas.get(with_locations)
        field = schema.properties.get("locations") if schema is not None and schema.properties else None
        branches = (field.one_of or [field]) if isinstance(field, Schema) else []
        for branch in branches:
            if isinstance(branch, Schema) and isinstance(branch.items, Schema):
                branch.items.enum = list(settings.locations)


async def manages_users(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """An admin with every location: a store-limited admin could otherwise lift its own limit."""
    user = connection.scope.get("user")
    if isinstance(user, Principal) and user.can(Role.ADMIN) and user.locations:
        raise PermissionDeniedException("managing users needs an admin with every location")


def user_body(user: User) -> UserBody:
    return UserBody(user.username, user.role, list(user.locations), user.disabled, user.created_at)


def user_error(exc: UserError) -> ApiError:
    """The one error shape for a refused change: 404 unknown, 409 conflict, 400 bad input."""
    match exc:
        case UnknownUser():
            return ApiError(404, exc.message, details={"username": exc.username})
        case UserExists():
            return ApiError(409, exc.message, details={"username": exc.username, "reason": "user_exists"})
        case LastAdmin():
            return ApiError(409, exc.message, details={"username": exc.username, "reason": "last_admin"})
    return ApiError(400, exc.message, details=[{"field": exc.field or "body", "message": exc.message}])


ERRORS = {
    400: ResponseSpec(ErrorBody, description="Bad input (a short password, an unknown location...)"),
    401: ResponseSpec(ErrorBody, description="Missing, expired or invalid token"),
    403: ResponseSpec(ErrorBody, description="Needs the admin role with every location"),
}
NOT_FOUND = {404: ResponseSpec(ErrorBody, description="No such user")}
CONFLICT = {409: ResponseSpec(ErrorBody, description="The user exists, or this is the last admin (details.reason)")}


class UsersController(Controller):
    path = "/api/v1/users"
    tags = ["users"]
    guards = [requires(Role.ADMIN), manages_users]

    @get("/", summary="Every user, with its role and locations", responses=ERRORS)
    async def list_users(self, users: NamedDependency[UserStore]) -> list[UserBody]:
        return [user_body(user) for user in await users.list()]

    @post("/", status_code=201, summary="Add a user", responses={**ERRORS, **CONFLICT})
    async def add_user(
        self, data: JSONBody[NewUser], users: NamedDependency[UserStore], settings: NamedDependency[Settings]
    ) -> UserBody:
        try:
            user = await users.add(
                data.username.strip().lower(),
                data.role,
                data.password,
                locations=data.locations,
                known_locations=settings.locations,
            )
        except UserError as exc:
            raise user_error(exc) from None
        return user_body(user)

    @patch(
        "/{username:str}",
        summary="Change a user's role, locations or disabled flag (its tokens end)",
        description="Refused (409, reason last_admin) when it would leave no enabled admin with every location.",
        responses={**ERRORS, **NOT_FOUND, **CONFLICT},
    )
    async def change_user(
        self,
        username: FromPath[str],
        data: JSONBody[UserChange],
        users: NamedDependency[UserStore],
        settings: NamedDependency[Settings],
    ) -> UserBody:
        try:
            user = await users.update(
                username.lower(),
                role=data.role,
                locations=data.locations,
                disabled=data.disabled,
                known_locations=settings.locations,
            )
        except UserError as exc:
            raise user_error(exc) from None
        return user_body(user)

    @post(
        "/{username:str}/password",
        status_code=204,
        summary="Set a new password (the user's tokens end)",
        responses={**ERRORS, **NOT_FOUND},
    )
    async def reset_password(
        self,
        username: FromPath[str],
        data: JSONBody[NewPassword],
        users: NamedDependency[UserStore],
    ) -> Response[None]:
        try:
            await users.set_password(username.lower(), data.password)
        except UserError as exc:
            raise user_error(exc) from None
        return Response(None, status_code=204)

    @delete(
        "/{username:str}",
        status_code=204,
        summary="Remove a user (its tokens end)",
        description="Refused (409, reason last_admin) for the last enabled admin with every location.",
        responses={**ERRORS, **NOT_FOUND, **CONFLICT},
    )
    async def remove_user(self, username: FromPath[str], users: NamedDependency[UserStore]) -> None:
        try:
            await users.remove(username.lower())
        except UserError as exc:
            raise user_error(exc) from None
