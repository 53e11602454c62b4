"""Build the Litestar application of a role from its container: the top of the house, beside
app/bootstrap.py. Nothing below imports it (the import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.config.cors import CORSConfig
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.types import ASGIApp, ControllerRouterHandler

from app.bootstrap import Container
from app.commands.controllers import CommandStatusController, command_routes
from app.commands.deadletter_controller import DeadLetterController
from app.commands.edge import EXCEPTION_HANDLERS as COMMAND_EXCEPTION_HANDLERS
from app.http.auth import PUBLIC, authentication
from app.http.errors import EXCEPTION_HANDLERS
from app.http.internal_calls import InternalCallsController  # --- node stores
from app.http.json_guard import guard_bodies
from app.http.limits import UPLOAD_ENVELOPE_BYTES, UPLOAD_PATHS
from app.http.openapi import document_rules
from app.http.request_id import echo_request_id
from app.http.security_headers import with_security_headers
from app.http.stream_limits import StreamLimiter
from app.http.swagger import VendoredSwagger
from app.http.wrappers import head_as_get, with_log_context
from app.imports.controller import ImportController
from app.listener.internal_controller import ListenerInternalController
from app.queries.alerts import AlertController
from app.queries.audit import AuditController, audit_csv
from app.queries.controllers import ItemQueryController
from app.queries.exports import ExportController
from app.queries.freshness import with_sequence
from app.queries.hot_reads import with_hot_reads
from app.queries.low_stock import LowStockController
from app.queries.store_day import StoreDayController
from app.queries.stream import ChangeStream, stream_changes
from app.system.accounts_internal import AccountsInternalController  # --- node accounts
from app.system.controllers import LoginBody, SystemController, metrics
from app.system.kiosk_controller import KioskLinkBody, KioskLinkController, document_kiosk_rules
from app.system.users_controller import CLOSED_BODIES as USER_BODIES
from app.system.users_controller import UsersController, document_user_rules
from app.web.audit import AuditPageController
from app.web.forms import DeadLetterFormController, form_routes
from app.web.imports import ImportFormController, ImportPageController
from app.web.kiosk import KioskEntryController, KioskPageController
from app.web.live import LiveUpdates, page_stream
from app.web.login import LoginController
from app.web.low_stock import LowStockPageController
from app.web.pages import PageController
from app.web.paths import STATIC
from app.web.people import PeopleController
from app.web.rendering import Renderer, build_environment
from app.web.wall import WallController
from app.web.webhooks import WebhooksPageController
from app.webhooks.controller import CLOSED_BODIES as WEBHOOK_BODIES
from app.webhooks.controller import WebhooksController

TITLES = {
    "all": "Inventory (all roles)",
    "command": "Inventory command service",
    "query": "Inventory query service",
    "listener": "Inventory listener",
}


def _value(obj: Any) -> Provide:
    return Provide(lambda: obj, use_cache=True, sync_to_thread=False)


def create_app(container: Container) -> Litestar:
    settings = container.settings
    handlers: list[ControllerRouterHandler] = [
        SystemController, UsersController, metrics, DeadLetterController, WebhooksController,
    ]  # fmt: skip
    dependencies: dict[str, Provide] = {
        "settings": _value(settings),
        "users": _value(container.users),
        "tokens": _value(container.tokens),
        "revocations": _value(container.revocations),
        "kiosk_links": _value(container.kiosk_links),
        "login_limiter": _value(container.login_limiter),
        "readiness": _value(container.readiness),
        "replayer": _value(container.replayer),
        "webhooks": _value(container.webhooks),
    }
    plugins: list[Any] = []
    environment = build_environment()
    if container.inventory is not None:
        # What nodes on other machines start from and follow (docs/scaling.md).
        handlers.append(ListenerInternalController)
        dependencies["reader"] = _value(container.reader)
    # --- node accounts: the listener holds users.db and serves it to the nodes.
    if container.role in ("listener", "all"):
        handlers.append(AccountsInternalController)
    # --- node stores: the listener serves its webhooks, dead letters and imports to the nodes.
    if container.role in ("listener", "all"):
        handlers.append(InternalCallsController)
        dependencies["internal_targets"] = _value(container.internal_targets)
    if container.commands is not None:
        handlers += [*command_routes(), *form_routes(), DeadLetterFormController]
        dependencies["service"] = _value(container.commands)
    if container.imports is not None:
        handlers += [ImportController, ImportFormController]
        dependencies["imports"] = _value(container.imports)
    if container.status is not None:
        handlers.append(CommandStatusController)
        dependencies["status"] = _value(container.status)
    if container.queries is not None and container.feed is not None:
        channels = ChannelsPlugin(
            backend=MemoryChannelsBackend(),
            # One channel per subscription in use, made on the fly (app/queries/feed.py).
            arbitrary_channels_allowed=True,
            subscriber_max_backlog=settings.sse_backlog,
            subscriber_backlog_strategy="dropleft",
        )
        container.feed.channels = channels
        plugins.append(channels)
        handlers += [
            ItemQueryController,
            StoreDayController,
            ExportController,
            AuditController,
            audit_csv,
            LowStockController,
            AlertController,
            AuditPageController,
            LowStockPageController,
            stream_changes,
            LoginController,
            # Wall links open pages of this service: made, listed and entered here.
            KioskLinkController,
            KioskPageController,
            KioskEntryController,
            PageController,
            WallController,
            PeopleController,
            WebhooksPageController,
            page_stream,
        ]
        dependencies["queries"] = _value(container.queries)
        if container.import_store is not None:
            handlers.append(ImportPageController)
            dependencies["import_store"] = _value(container.import_store)
        dependencies["reader"] = _value(container.reader)
        limiter = StreamLimiter(settings.max_streams_per_user)
        dependencies["change_stream"] = _value(ChangeStream(container.reader, container.feed, channels, limiter))
        dependencies["live_updates"] = _value(LiveUpdates(Renderer(environment, {})))
    handlers.append(create_static_files_router(path="/static", directories=[STATIC], opt={PUBLIC: True}))

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncGenerator[None, None]:
        await container.start()
        try:
            yield
        finally:
            await container.stop()

    app = Litestar(
        # One router: Litestar refuses two controllers on one path (commands and queries share
        # /items/{id}) when they are registered on the app one by one.
        route_handlers=[Router("/", route_handlers=handlers)],
        dependencies=dependencies,
        plugins=plugins,
        middleware=[authentication(container.tokens, container.revocations, secure_cookies=settings.env == "prod")],
        before_send=[echo_request_id],
        exception_handlers={**COMMAND_EXCEPTION_HANDLERS, **EXCEPTION_HANDLERS},
        template_config=TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment)),
        csrf_config=CSRFConfig(
            secret=hashlib.sha256(f"csrf:{settings.jwt_secret}".encode()).hexdigest(),
            cookie_name="inventory_csrf",
            cookie_secure=settings.env == "prod",
            cookie_samesite="lax",
            # The JSON API uses bearer tokens (no ambient authority), so CSRF is for pages and forms.
            exclude=["^/api/", "^/schema", "^/metrics", "^/static/", "^/internal/"],
        ),
        cors_config=_cors(settings.cors_origins),
        request_max_body_size=settings.max_body_bytes,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title=TITLES[container.role],
            version="1",
            path="/schema",
            render_plugins=[VendoredSwagger()],
        ),
        debug=False,
        logging_config=None,  # app.logs configures logging for the process
    )
    document_rules(app, settings, closed_bodies=(LoginBody, KioskLinkBody, *USER_BODIES, *WEBHOOK_BODIES))
    document_user_rules(app, settings)
    document_kiosk_rules(app, settings)
    return app


def _cors(origins: tuple[str, ...]) -> CORSConfig | None:
    """Pages served by the query service send commands to the command service: allow those
    origins, with the session cookie."""
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=[
            "content-type", "x-csrftoken", "x-request-id", "idempotency-key", "prefer", "if-match", "authorization",
            "hx-request", "hx-current-url", "hx-target", "hx-trigger", "hx-trigger-name", "hx-boosted", "hx-prompt",
        ],
        expose_headers=["x-request-id", "location", "x-command-id", "retry-after", "hx-redirect"],
        max_age=600,
    )  # fmt: skip


def asgi(container: Container) -> ASGIApp:
    """The application as served: HEAD is answered like GET, without the body, log lines carry the
    request id, bodies are bounded in size and JSON depth, and answers carry security headers.
    (Header sizes and slow clients are bounded by the server itself: app/http/limits.py.)"""
    settings = container.settings
    app = head_as_get(with_log_context(create_app(container)))
    # An import's upload is a file, not JSON: its own limit, with room for the multipart envelope.
    upload = settings.import_max_bytes + UPLOAD_ENVELOPE_BYTES
    app = guard_bodies(
        app,
        max_depth=settings.json_max_depth,
        max_bytes=settings.max_body_bytes,
        uploads=dict.fromkeys(UPLOAD_PATHS, upload),
    )
    # --- sequence in answers (X-Inventory-Seq, X-Min-Seq): the replica's watermark on a node,
    # the feed's last announced change otherwise.
    replica, feed = container.replica, container.feed
    if replica is not None and feed is not None:
        app = with_sequence(app, lambda: replica.watermark, replica.wait_for, settings.min_seq_wait_seconds)
    elif feed is not None:
        app = with_sequence(app, lambda: feed.last_seq, feed.wait_for, settings.min_seq_wait_seconds)
    app = with_security_headers(app, settings)
    # --- hot reads: the stock of one item and the list, from answers held in this process
    # (outermost: a held answer carries the headers the application gave it). Their sequence is
    # the feed's, also on a node: it moves only once the held answers it ends are dropped.
    if container.answers is not None and feed is not None:
        app = with_hot_reads(app, container.answers, container.tokens, lambda: feed.last_seq)
    return app
