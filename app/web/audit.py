"""The audit log page (/events): who did what across the chain, filtered, paged by cursor,
exported as CSV, and live: entries that match the page's filters arrive on top as they happen.
Admins also see the dead letters there."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Stream, Template

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.domain.audit import AuditEntry, AuditFilters, BadCursor, Cursor, decode_cursor, parse_filters
from app.domain.catalogue import FieldError, InvalidCommand
from app.domain.events import EventType
from app.domain.records import Change, OutcomeChange
from app.http.auth import requires
from app.queries.audit import csv_response, filters_of
from app.queries.service import QueryService
from app.reader import InventoryReader
from app.settings import Settings
from app.web.context import page_context
from app.web.labels import ADJUST_REASONS, verb
from app.web.rendering import Renderer

AUDIT_ROWS = 50
DEAD_LETTER_ROWS = 50
# What the type filter offers: every event type by its verb.
EVENT_TYPE_CHOICES = tuple((event.value, verb(event.value)) for event in EventType)
# How many items a live page remembers the newest shown entry of; past that it keeps only the
# newest id overall (a bound on a page left open for months).
FOLLOWED_ITEMS = 10_000


def audit_filters(request: Request[Any, Any, Any], settings: Settings) -> tuple[AuditFilters, list[FieldError]]:
    """The page's filters, and what was wrong with them (the page then lists nothing and says why)."""
    try:
        return parse_filters(request.query_params, settings.locations), []
    except InvalidCommand as invalid:
        return AuditFilters(), invalid.errors


async def _audit_context(request: Request[Any, Any, Any], settings: Settings, queries: QueryService) -> dict[str, Any]:
    filters, errors = audit_filters(request, settings)
    cursor_text = request.query_params.get("cursor") or ""
    try:
        cursor = decode_cursor(cursor_text)
    except BadCursor:
        cursor, cursor_text = Cursor(), ""
    entries: list[AuditEntry] = []
    next_cursor: Cursor | None = None
    unknown_item = False
    if not errors:
        found = await queries.audit_page(filters, cursor, AUDIT_ROWS)
        entries, next_cursor, unknown_item = found.entries, found.next_cursor, found.unknown_item
    query = filters.query()
    return {
        "filters": filters,
        "filter_errors": errors,
        "entries": entries,
        "unknown_item": unknown_item,
        "first_page": not cursor_text,
        "older_link": f"/events?{urlencode({**query, 'cursor': next_cursor.encode()})}" if next_cursor else None,
        "newest_link": f"/events?{urlencode(query)}",
        "export_link": f"/events.csv?{urlencode(query)}",
        "query_string": urlencode(query),
        "event_types": EVENT_TYPE_CHOICES,
        "reasons": [(code, label) for code, label, _ in ADJUST_REASONS],
    }


class AuditPageController(Controller):
    path = "/"
    guards = [requires(Role.VIEWER)]
    include_in_schema = False

    @get("/events")
    async def events_page(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
        reader: NamedDependency[InventoryReader],
    ) -> Template:
        context = await _audit_context(request, settings, queries)
        dead_letters = await reader.dead_letters(limit=DEAD_LETTER_ROWS) if request.user.can(Role.ADMIN) else []
        return Template(
            "events.html",
            status_code=400 if context["filter_errors"] else 200,
            context=page_context(request, settings, nav="events", dead_letters=dead_letters, **context),
        )

    @get("/ui/events/rows")
    async def event_rows(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Template:
        """The first page's entries again (after the stream reconnected)."""
        context = await _audit_context(request, settings, queries)
        return Template("partials/audit_rows.html", context=page_context(request, settings, **context))

    @get("/events.csv")
    async def events_csv(
        self,
        request: Request[Principal, Any, Any],
        settings: NamedDependency[Settings],
        queries: NamedDependency[QueryService],
    ) -> Stream:
        return csv_response(queries, filters_of(request.query_params, settings))


class AuditFollower:
    """What one live events page has shown, so each change adds only the entries it wrote.

    A change names its item, not its history rows: the rows are read from the item's part of the
    history index after the newest one this page already showed of that item (or, for an item it
    has not shown, after the newest entry there was when the page opened)."""

    def __init__(self, filters: AuditFilters | None, since: int) -> None:
        self.filters = filters
        self._since = since
        self._shown: dict[str, int] = {}

    async def entries(self, change: Change, queries: QueryService) -> list[AuditEntry]:
        """The new entries of this change that the page's filters admit, oldest first."""
        if self.filters is None:
            return []
        if isinstance(change, OutcomeChange):
            if change.status != "rejected":
                return []  # its history rows come with the item's change
            rejection = await queries.audit_rejection(change.command_id)
            return [rejection] if rejection is not None and self.filters.admits(rejection) else []
        after = self._shown.get(change.item_id, self._since)
        found = await queries.audit_after(change.item_id, after)
        if found:
            if len(self._shown) >= FOLLOWED_ITEMS:
                self._since = max(self._since, *self._shown.values())
                self._shown.clear()
            self._shown[change.item_id] = max(after, *(entry.id or 0 for entry in found))
        return [entry for entry in found if self.filters.admits(entry)]


def render_entries(renderer: Renderer, entries: list[AuditEntry], context: dict[str, Any]) -> str:
    """New entries for the top of the log: each goes on top in turn, so the newest ends first."""
    return "".join(renderer.render("partials/oob_event.html", entry=entry, **context) for entry in entries)


async def follower_for(filters: AuditFilters | None, queries: QueryService) -> AuditFollower:
    """A follower for a live page with these filters (the item resolved; an unknown SKU follows
    nothing, as the page lists nothing)."""
    resolved = await queries.resolve_audit_item(filters) if filters is not None else None
    return AuditFollower(resolved, await queries.last_history_id())
