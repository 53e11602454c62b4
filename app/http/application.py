"""Build the Litestar application of a role from its container."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import ASGIApp, ControllerRouterHandler

from app.bootstrap import Container
from app.commands.controllers import CommandController, CommandStatusController
from app.http.auth import authentication
from app.http.errors import EXCEPTION_HANDLERS
from app.http.head import head_as_get
from app.http.request_id import echo_request_id
from app.http.system import SystemController, metrics
from app.queries.controllers import ItemQueryController
from app.queries.stream import ChangeStream, stream_changes

TITLES = {
    "all": "Inventory (all roles)",
    "command": "Inventory command service",
    "query": "Inventory query service",
    "listener": "Inventory listener",
}
# Per-subscriber queue of the in-process fan-out; beyond it the oldest are dropped and the
# subscriber refills from the outbox (see app/queries/stream.py).
SUBSCRIBER_BACKLOG = 2000


def _value(obj: Any) -> Provide:
    return Provide(lambda: obj, use_cache=True, sync_to_thread=False)


def create_app(container: Container) -> Litestar:
    settings = container.settings
    handlers: list[ControllerRouterHandler] = [SystemController, metrics]
    dependencies: dict[str, Provide] = {
        "settings": _value(settings),
        "users": _value(container.users),
        "tokens": _value(container.tokens),
        "login_limiter": _value(container.login_limiter),
        "readiness": _value(container.readiness),
    }
    plugins: list[Any] = []
    if container.commands is not None:
        handlers.append(CommandController)
        dependencies["service"] = _value(container.commands)
    if container.status is not None:
        handlers.append(CommandStatusController)
        dependencies["status"] = _value(container.status)
    if container.queries is not None and container.feed is not None:
        channels = ChannelsPlugin(
            backend=MemoryChannelsBackend(),
            channels=["changes"],
            subscriber_max_backlog=SUBSCRIBER_BACKLOG,
            subscriber_backlog_strategy="dropleft",
        )
        container.feed.channels = channels
        plugins.append(channels)
        handlers += [ItemQueryController, stream_changes]
        dependencies["queries"] = _value(container.queries)
        dependencies["change_stream"] = _value(ChangeStream(container.reader, container.feed, channels))

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncGenerator[None, None]:
        await container.start()
        try:
            yield
        finally:
            await container.stop()

    return Litestar(
        # One router: Litestar refuses two controllers on one path (commands and queries share
        # /items/{id}) when they are registered on the app one by one.
        route_handlers=[Router("/", route_handlers=handlers)],
        dependencies=dependencies,
        plugins=plugins,
        middleware=[authentication(container.tokens)],
        before_send=[echo_request_id],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title=TITLES[container.role],
            version="1",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        debug=False,
        logging_config=None,  # app.logs configures logging for the process
    )


def asgi(container: Container) -> ASGIApp:
    """The application as served: HEAD is answered like GET, without the body."""
    return head_as_get(create_app(container))
