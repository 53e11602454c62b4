"""Registering an endpoint, the same for the admin API (app/webhooks/controller.py) and the
Webhooks page (app/web/webhooks.py): the checks, then the store."""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.domain.webhooks import EVENT_KINDS
from app.webhooks.store import Endpoint, WebhookStore, new_secret
from app.webhooks.urls import AddressRefused, Unresolvable, WebhookUrlError, check_form, resolve

MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 200
# Printable ASCII without spaces: what survives copying between a page, a config file and a shell.
# The (?!\n) because the schema's validator (msgspec, Python's re.search) lets "$" match before a
# trailing newline: without it the schema would promise a secret ending in one, refused here.
SECRET_PATTERN = r"^[\x21-\x7e]+(?!\n)$"
_SECRET = re.compile(SECRET_PATTERN)
# Each endpoint has a worker in the dispatcher and its rows in webhooks.db: a bound.
MAX_ENDPOINTS = 100


class WebhookError(ValueError):
    """Bad input for an endpoint; ``field`` names the input at fault. ``status`` 403: the URL is
    well formed but the deployment forbids its address (not public)."""

    def __init__(self, message: str, field: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(e.strip() for e in events if e.strip()))
    unknown = [e for e in chosen if e not in EVENT_KINDS]
    if unknown:
        raise WebhookError(f"unknown event kinds: {', '.join(unknown)} (known: {', '.join(EVENT_KINDS)})", "events")
    if not chosen:
        raise WebhookError("choose at least one event kind", "events")
    return tuple(e for e in EVENT_KINDS if e in chosen)


def check_secret(secret: str | None) -> str:
    if secret is None or secret == "":
        return new_secret()
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH or not _SECRET.fullmatch(secret):
        raise WebhookError(
            f"the secret must be {MIN_SECRET_LENGTH}-{MAX_SECRET_LENGTH} printable ASCII characters without spaces "
            "(or none: one is made)",
            "secret",
        )
    return secret


async def register(
    store: WebhookStore, url: str, events: Iterable[str], secret: str | None, *, allow_private: bool
) -> Endpoint:
    """A new active endpoint; its secret is returned here and never shown again."""
    kinds = check_events(events)
    chosen_secret = check_secret(secret)
    if len(await store.endpoints()) >= MAX_ENDPOINTS:
        raise WebhookError(f"there are {MAX_ENDPOINTS} endpoints already; remove some first", "url")
    try:
        await resolve(url, allow_private=allow_private)
    except Unresolvable:
        # Accepted: a name may resolve later (a receiver deployed after its hook is registered).
        # Every attempt resolves and checks again, and its failure shows as the last error.
        check_form(url)
    except AddressRefused as exc:
        raise WebhookError(str(exc), "url", status=403) from None
    except WebhookUrlError as exc:
        raise WebhookError(str(exc), "url") from None
    return await store.add_endpoint(url, kinds, chosen_secret)
