"""What every page and partial needs to know: who is looking, what they may do, where commands go."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.utils.scope.state import ScopeState

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.reader import SORTS
from app.settings import Settings
from app.web.labels import ADJUST_REASONS

SORT_LABELS = {
    "sku": "SKU",
    "name": "Name",
    "-available": "Most available",
    "available": "Least available",
    "-quantity": "Most on hand",
    "-updated_at": "Recently changed",
}
# htmx keeps the page on 4xx by default; ours carry the field errors and rejections to show.
RESPONSE_HANDLING = [
    {"code": "204", "swap": False},
    {"code": "[23]..", "swap": True},
    {"code": "[45]..", "swap": True, "error": False},
]


def home_location(user: Principal, settings: Settings) -> str:
    """Where a user's pages open: a store-limited user's first location (in the configured
    order), everyone else's default location."""
    return next((code for code in settings.locations if code in user.locations), settings.default_location)


def form_locations(user: Principal, settings: Settings) -> tuple[str, ...]:
    """The locations a user's forms offer: the ones it may act at (app/domain/scope.py)."""
    if not user.locations:
        return settings.locations
    return tuple(code for code in settings.locations if code in user.locations)


def role_context(user: Principal, settings: Settings | None = None) -> dict[str, Any]:
    """What the user may do; with the settings, also where (its forms offer only its locations)."""
    scoped: dict[str, Any] = {}
    if settings is not None:
        scoped = {"form_locations": form_locations(user, settings), "home_location": home_location(user, settings)}
    return {
        "user": user,
        "can_move_stock": user.can(Role.CLERK),
        # The catalogue (create, edit, delete) is every store's: a store-limited user may not change it.
        "can_manage_items": user.can(Role.MANAGER) and not user.locations,
        "is_admin": user.can(Role.ADMIN),
        # CSV imports (app/web/imports.py): managers and admins.
        "can_import": user.can(Role.MANAGER),
        # The People page: an admin with every location (a limited one could lift its own limit).
        "manages_people": user.can(Role.ADMIN) and not user.locations,
        **scoped,
    }


def site_context(settings: Settings) -> dict[str, Any]:
    """The same for every request of this process: handed to partials the stream renders too."""
    cross_origin = bool(settings.command_base_url)
    return {
        "command_base": settings.command_base_url,
        "locations": settings.locations,
        "default_location": settings.default_location,
        "low_stock_default": settings.low_stock_threshold,
        "adjust_reasons": ADJUST_REASONS,
        "sorts": [(key, SORT_LABELS[key]) for key in SORT_LABELS if key in SORTS],
        "htmx_config": {
            "selfRequestsOnly": not cross_origin,
            "withCredentials": cross_origin,
            "responseHandling": RESPONSE_HANDLING,
            "allowScriptTags": False,
            # Under the Content-Security-Policy (app/http/security_headers.py): no eval (forms say
            # data-reset-after-success instead of hx-on, see static/app.js) and no injected
            # <style> (the indicator classes are in static/app.css).
            "allowEval": False,
            "includeIndicatorStyles": False,
        },
    }


def page_context(request: Request[Any, Any, Any], settings: Settings, **extra: Any) -> dict[str, Any]:
    user = request.user
    assert isinstance(user, Principal)
    return {
        **site_context(settings),
        **role_context(user, settings),
        "csrf": ScopeState.from_scope(request.scope).csrf_token or "",
        **extra,
    }
