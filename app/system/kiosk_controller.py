"""``/api/v1/kiosk-links``: an admin makes, lists and revokes wall links (app/auth/kiosk.py).

Served where the pages are (the query role, or ``all``): a link's URL opens a page of that
service, so the URL returned is this service's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Schema
from litestar.params import FromPath, JSONBody

from app.auth.kiosk import MAX_EXPIRY_DAYS, NAME_MAX, KioskLink, KioskLinkError, KioskLinks
from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import Principal
from app.clock import to_rfc3339
from app.domain.catalogue import FieldError, InvalidCommand
from app.http.auth import requires
from app.http.errors import ApiError, ErrorBody
from app.settings import Settings


class KioskLinkBody(msgspec.Struct, forbid_unknown_fields=True):
    # The limits app/auth/kiosk.py checks, also in the document (a name needs one visible character).
    name: Annotated[
        str,
        msgspec.Meta(
            min_length=1, max_length=NAME_MAX, pattern=r"\S", description="what the wall is, e.g. 'S001 back office TV'"
        ),
    ]
    locations: Annotated[list[str], msgspec.Meta(min_length=1, description="configured location codes the wall shows")]
    expires_in_days: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1, le=MAX_EXPIRY_DAYS, description="the link stops working after this many days; omit: never"
            ),
        ]
        | None
    ) = None


def document_kiosk_rules(app: Litestar, settings: Settings) -> None:
    """The configured location codes, as the document's only values for a link's ``locations``."""
    schemas = app.openapi_schema.components.schemas or {}
    schema = schemas.get(KioskLinkBody.__name__)
    field = schema.properties.get("locations") if schema is not None and schema.properties else None
    if isinstance(field, Schema) and isinstance(field.items, Schema):
        field.items.enum = list(settings.locations)


class KioskLinkOut(msgspec.Struct):
    id: str
    name: str
    locations: list[str]
    state: Annotated[str, msgspec.Meta(description="active, expired or revoked")]
    created_by: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class KioskLinkCreated(KioskLinkOut):
    url: Annotated[str, msgspec.Meta(description="the wall link with its secret: shown this once only")]


def _moment(seconds: int | None) -> str | None:
    return to_rfc3339(datetime.fromtimestamp(seconds, UTC)) if seconds is not None else None


def link_out(link: KioskLink) -> KioskLinkOut:
    return KioskLinkOut(
        link.id,
        link.name,
        list(link.locations),
        link.state(),
        link.created_by,
        link.created_at,
        _moment(link.expires_at),
        link.revoked_at,
    )


def link_url(request: Request[Any, Any, Any], link: KioskLink, secret: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/kiosk/{link.id}.{secret}"


async def create_link(
    links: KioskLinks,
    revocations: Revocations,
    settings: Settings,
    creator: Principal,
    name: str,
    locations: list[str],
    expires_in_days: int | None,
) -> tuple[KioskLink, str]:
    """Shared by the API and the admin page. This process knows the link at once (the others
    within about a second)."""
    link, secret = await links.create(
        name, locations, known=settings.locations, created_by=creator.username, expires_in_days=expires_in_days
    )
    await revocations.refresh()
    return link, secret


class KioskLinkController(Controller):
    path = "/api/v1/kiosk-links"
    tags = ["kiosk links"]
    guards = [requires(Role.ADMIN)]

    @post(
        "/",
        status_code=201,
        summary="Make a read-only wall link for one or more locations",
        description="The answer's `url` carries the link's secret; it is never shown again (only its hash is kept).",
        responses={400: ResponseSpec(ErrorBody), 403: ResponseSpec(ErrorBody)},
    )
    async def create(
        self,
        request: Request[Principal, Any, Any],
        data: JSONBody[KioskLinkBody],
        kiosk_links: NamedDependency[KioskLinks],
        revocations: NamedDependency[Revocations],
        settings: NamedDependency[Settings],
    ) -> KioskLinkCreated:
        try:
            link, secret = await create_link(
                kiosk_links, revocations, settings, request.user, data.name, data.locations, data.expires_in_days
            )
        except KioskLinkError as exc:
            raise InvalidCommand([FieldError(exc.field, exc.message)]) from None
        out = link_out(link)
        return KioskLinkCreated(**msgspec.structs.asdict(out), url=link_url(request, link, secret))

    @get("/", summary="Every wall link (never its secret)")
    async def list_links(self, kiosk_links: NamedDependency[KioskLinks]) -> list[KioskLinkOut]:
        return [link_out(link) for link in await kiosk_links.list()]

    @delete(
        "/{link_id:str}",
        status_code=200,
        summary="Revoke a wall link: its walls end within seconds",
        responses={404: ResponseSpec(ErrorBody)},
    )
    async def revoke(
        self,
        link_id: FromPath[str],
        kiosk_links: NamedDependency[KioskLinks],
        revocations: NamedDependency[Revocations],
    ) -> KioskLinkOut:
        link = await kiosk_links.revoke(link_id.strip().lower()[:64])
        if link is None:
            raise ApiError(404, "no such wall link")
        await revocations.refresh()
        return link_out(link)
