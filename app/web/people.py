"""The People page (served by the query service, with the other pages): an admin lists users,
adds one, sets its role and locations, resets its password, disables or enables it.

The forms post here with htmx (same origin, the page's CSRF token in the X-CSRFToken header);
each answer is a short result shown next to its form, plus the changed cells of the user's row
(out-of-band swaps). The changes go through the UserStore the admin API uses
(app/system/users_controller.py), users.db being shared by every role.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from app.auth.passwords import MIN_PASSWORD_LENGTH
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.auth.users import User, UserError, UserStore
from app.http.auth import requires
from app.settings import Settings
from app.system.users_controller import manages_users, user_error
from app.web.context import page_context

# Beyond this many configured locations the page names how many instead of listing them all.
LISTED_LOCATIONS = 24
ROLES = tuple(role.value for role in Role)


def person(user: User) -> dict[str, Any]:
    """A user as its row shows it; ``key`` is its name in element ids (a dot would need escaping
    in the CSS selectors htmx targets)."""
    return {
        "key": user.username.encode().hex(),
        "username": user.username,
        "role": user.role.value,
        "locations": user.locations,
        "disabled": user.disabled,
        "created_at": user.created_at,
    }


def split_codes(text: str) -> list[str]:
    """ "S001, s002 S003" as the codes it names: commas or spaces between them."""
    return [code for code in text.replace(",", " ").split() if code]


class PeopleController(Controller):
    path = "/"
    guards = [requires(Role.ADMIN), manages_users]
    include_in_schema = False

    @get("/people")
    async def people_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        users: NamedDependency[UserStore],
    ) -> Template:
        people = [person(user) for user in await users.list()]
        return Template(
            "people.html",
            context=page_context(request, settings, nav="people", people=people, **_choices(settings)),
        )

    @post("/ui/people", status_code=200)
    async def add(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        users: NamedDependency[UserStore],
    ) -> Template:
        form = await _form(request)
        username = form.get("username", "").strip().lower()
        label = f"Add {username or 'user'}"
        try:
            role = _role(form.get("role", ""))
            user = await users.add(
                username,
                role,
                form.get("password", ""),
                locations=split_codes(form.get("locations", "")),
                known_locations=settings.locations,
            )
        except UserError as exc:
            return _refused(request, settings, label, exc)
        message = f"{user.username} can log in now"
        return _answer(request, settings, label, message, added=person(user))

    @post("/ui/people/{username:str}/role", status_code=200)
    async def set_role(
        self,
        request: Request[Principal, Any, Any],
        username: FromPath[str],
        settings: NamedDependency[Settings],
        users: NamedDependency[UserStore],
    ) -> Template:
        form = await _form(request)
        username = username.lower()
        label = f"Role of {username}"
        try:
            user = await users.update(username, role=_role(form.get("role", "")))
        except UserError as exc:
            return _refused(request, settings, label, exc, username)
        return _answer(request, settings, label, f"now {user.role.value}; signed out everywhere", changed=person(user))

    @post("/ui/people/{username:str}/locations", status_code=200)
    async def set_locations(
        self,
        request: Request[Principal, Any, Any],
        username: FromPath[str],
        settings: NamedDependency[Settings],
        users: NamedDependency[UserStore],
    ) -> Template:
        form = await _form(request)
        username = username.lower()
        label = f"Locations of {username}"
        try:
            user = await users.update(
                username, locations=split_codes(form.get("locations", "")), known_locations=settings.locations
            )
        except UserError as exc:
            return _refused(request, settings, label, exc, username)
        where = ", ".join(user.locations) or "every location"
        return _answer(request, settings, label, f"may act at {where}; signed out everywhere", changed=person(user))

    @post("/ui/people/{username:str}/password", status_code=200)
    async def reset_password(
        self,
        request: Request[Principal, Any, Any],
        username: FromPath[str],
        settings: NamedDependency[Settings],
        users: NamedDependency[UserStore],
    ) -> Template:
        form = await _form(request)
        username = username.lower()
        label = f"Password of {username}"
        try:
            await users.set_password(username, form.get("password", ""))
            user = await users.get(username)
        except UserError as exc:
            return _refused(request, settings, label, exc, username)
        changed = person(user) if user is not None else None
        return _answer(request, settings, label, "changed; signed out everywhere", changed=changed)

    @post("/ui/people/{username:str}/disabled", status_code=200)
    async def set_disabled(
        self,
        request: Request[Principal, Any, Any],
        username: FromPath[str],
        settings: NamedDependency[Settings],
        users: NamedDependency[UserStore],
    ) -> Template:
        form = await _form(request)
        username = username.lower()
        disabled = form.get("disabled", "") == "1"
        label = f"{'Disable' if disabled else 'Enable'} {username}"
        try:
            user = await users.update(username, disabled=disabled)
        except UserError as exc:
            return _refused(request, settings, label, exc, username)
        message = "disabled: cannot log in, signed out everywhere" if disabled else "enabled: can log in again"
        return _answer(request, settings, label, message, changed=person(user))


def _choices(settings: Settings) -> dict[str, Any]:
    listed = settings.locations if len(settings.locations) <= LISTED_LOCATIONS else ()
    return {
        "roles": ROLES,
        "listed_locations": listed,
        "location_count": len(settings.locations),
        "min_password": MIN_PASSWORD_LENGTH,
    }


def _role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise UserError(f"role must be one of {', '.join(ROLES)}", "role") from None


def _answer(
    request: Request[Principal, Any, Any],
    settings: Settings,
    label: str,
    message: str,
    *,
    changed: dict[str, Any] | None = None,
    added: dict[str, Any] | None = None,
) -> Template:
    choices = _choices(settings)
    context = page_context(
        request, settings, status="done", label=label, message=message, changed=changed, added=added, **choices
    )
    return Template("partials/people_answer.html", context=context)


def _refused(
    request: Request[Principal, Any, Any], settings: Settings, label: str, exc: UserError, username: str | None = None
) -> Template:
    """The same status and message as the API (app/system/users_controller.py), next to the form."""
    error = user_error(exc)
    context = page_context(
        request, settings, status="refused", label=label, message=exc.message, changed=None, added=None
    )
    return Template("partials/people_answer.html", status_code=error.status, context=context)


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    data = await request.form()
    return {key: str(value)[:4000] for key, value in data.items() if key != "_csrf_token"}
