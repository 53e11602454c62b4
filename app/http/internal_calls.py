"""Calls from a node to an object the listener keeps (docs/scaling.md): the generic form of the
accounts calls (app/system/accounts_internal.py), for stores whose file must have one home.

A feature names what it lets nodes call in a ``Surface``: the class, the allow-listed async
methods, and the exceptions that may cross (its "not found"s). The listener serves one object
per target name at ``POST /internal/calls/{target}``, body ``{"method", "args", "kwargs"}``:
each argument is decoded with ``msgspec.convert`` into the method's annotated parameter type
(``typing.get_type_hints``), the result is encoded with msgspec and answered as
``{"result": ...}``. An allow-listed exception answers 409 with ``X-Call-Error`` naming it and
its arguments in ``details.args``; the node raises the same exception type again. A method
outside the allow-list, or arguments that do not fit it, answer 400; an unknown target 404.

On a node, ``remote(surface, calls, target)`` makes an object with the surface's methods that
post there and convert the result back to the method's return annotation (or the surface's
``returns`` override, for a loosely annotated result such as ``dict[str, Any]`` holding bytes).
The listener unreachable, restarting (5xx) or not knowing the target: ``unavailable()``, a 503
with Retry-After, for the node's caller to retry.

Answers only the deployment's own processes (app/http/internal.py), always in JSON.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import logging
import operator
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import httpx
import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.http.auth import PUBLIC
from app.http.errors import ApiError, error_body, unavailable
from app.http.internal import INTERNAL_PATH, require_internal
from app.settings import Settings

log = logging.getLogger(__name__)

CALLS_PATH = f"{INTERNAL_PATH}/calls"
# Names the allow-listed exception a call raised (absent: the call itself was refused).
ERROR_HEADER = "X-Call-Error"
TIMEOUT = httpx.Timeout(10.0, read=60.0)
UNREACHABLE = "this is kept by the listener, which cannot be reached now; retry shortly"

T = TypeVar("T")


@dataclass(frozen=True)
class Surface:
    """What of a class nodes may call: allow-listed async methods, and the exceptions that cross."""

    cls: type[Any]
    methods: frozenset[str]
    errors: tuple[type[Exception], ...] = ()
    # Result types to convert to instead of a method's return annotation.
    returns: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.methods:
            if not inspect.iscoroutinefunction(getattr(self.cls, name, None)):
                raise TypeError(f"{self.cls.__name__}.{name} is not an async method")

    def error(self, name: str) -> type[Exception] | None:
        return next((kind for kind in self.errors if kind.__name__ == name), None)


@dataclass(frozen=True)
class Served:
    """An object the listener serves under a target name, through its surface."""

    obj: object
    surface: Surface


CallTargets = dict[str, Served]


class CallBody(msgspec.Struct, forbid_unknown_fields=True):
    method: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class BadCall(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    return {name: _checked(hint) for name, hint in typing.get_type_hints(function).items()}


def _checked(hint: Any) -> Any:
    """msgspec checks no item of an ``Iterable[X]`` (or ``Iterator[X]``): decode it as ``list[X]``."""
    origin = typing.get_origin(hint)
    if origin in (collections.abc.Iterable, collections.abc.Iterator):
        return list[typing.get_args(hint) or Any]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, [_checked(arg) for arg in typing.get_args(hint)])
    return hint


def decode_call(served: Served, body: bytes) -> tuple[Callable[..., Any], inspect.BoundArguments]:
    """The allowed bound method a body asks for and its arguments, each converted to its
    annotated type. BadCall for anything else."""
    try:
        call = msgspec.json.decode(body, type=CallBody)
    except msgspec.ValidationError as exc:
        raise BadCall("body", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadCall("body", f"not valid JSON: {exc}") from None
    if call.method not in served.surface.methods:
        raise BadCall("method", f"{call.method} is not a call the listener takes")
    method = getattr(served.obj, call.method)
    try:
        bound = inspect.signature(method).bind(*call.args, **call.kwargs)
    except TypeError as exc:
        raise BadCall("args", str(exc)) from None
    hints = _hints(method)
    for name, value in bound.arguments.items():
        try:
            bound.arguments[name] = msgspec.convert(value, hints.get(name, Any))
        except msgspec.ValidationError as exc:
            raise BadCall("args", f"{name}: {exc}") from None
    return method, bound


def _error(api: ApiError) -> Response[Any]:
    return Response(error_body(api.error, api.message, api.details), status_code=api.status, headers=api.headers)


async def answer_call(served: Served | None, body: bytes) -> Response[Any]:
    """The answer to one call: its result, the allow-listed exception it raised, or a refusal."""
    if served is None:
        return _error(ApiError(404, "no such call target here"))
    try:
        method, bound = decode_call(served, body)
    except BadCall as exc:
        return _error(ApiError(400, "the call is invalid", details=[{"field": exc.field, "message": exc.message}]))
    try:
        result = await method(*bound.args, **bound.kwargs)
    except served.surface.errors as exc:
        return _error(
            ApiError(
                409,
                str(exc) or type(exc).__name__,
                error="CallRaised",
                details={"exception": type(exc).__name__, "args": msgspec.to_builtins(list(exc.args))},
                headers={ERROR_HEADER: type(exc).__name__},
            )
        )
    return Response(msgspec.json.encode({"result": result}), media_type="application/json")


class InternalCallsController(Controller):
    path = CALLS_PATH
    opt = {PUBLIC: True}
    include_in_schema = False

    @post("/{target:str}", status_code=200)
    async def call(
        self,
        request: Request[Any, Any, Any],
        target: FromPath[str],
        internal_targets: NamedDependency[CallTargets],
        settings: NamedDependency[Settings],
    ) -> Response[Any]:
        try:
            require_internal(request, settings)
        except ApiError as exc:
            return _error(exc)
        return await answer_call(internal_targets.get(target), await request.body())


# --- the node's side ---------------------------------------------------------------------------


class RemoteCalls:
    """One node's client of the listener's calls."""

    def __init__(
        self,
        listener_url: str,
        token: str,
        *,
        max_body_bytes: int = 64 * 1024,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        # What one call may send: the listener refuses bigger bodies (INVENTORY_MAX_BODY_BYTES).
        self.max_body_bytes = max_body_bytes
        self._http = http or httpx.AsyncClient(
            base_url=listener_url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        surface: Surface,
        target: str,
        method: str,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run ``method`` on the listener's object; its result converted to the method's return
        type. Raises the allow-listed exception it raised; 503 (ApiError) when the listener is away."""
        body = msgspec.json.encode({"method": method, "args": list(args), "kwargs": dict(kwargs or {})})
        try:
            response = await self._http.post(
                f"{CALLS_PATH}/{target}", content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            log.warning("calls: %s.%s not sent: %r", target, method, exc)
            raise unavailable(UNREACHABLE) from None
        if response.status_code == 200:
            returns = surface.returns.get(method) or _hints(getattr(surface.cls, method)).get("return", Any)
            return msgspec.convert(msgspec.json.decode(response.content)["result"], returns)
        kind = surface.error(response.headers.get(ERROR_HEADER, ""))
        if kind is not None:
            details = msgspec.json.decode(response.content).get("details") or {}
            raise kind(*details.get("args", []))
        log.error("calls: the listener refused %s.%s: %s %s", target, method, response.status_code, response.text)
        if response.status_code >= 500 or response.status_code in (401, 404):
            # Restarting, or not (yet) a listener of this deployment: retrying is all a node can do.
            raise unavailable(UNREACHABLE)
        raise RuntimeError(f"the listener refused {target}.{method}: {response.status_code}")


class RemoteObject:
    """The base of every proxy ``remote`` makes: opening and closing are the listener's business."""

    def __init__(self, calls: RemoteCalls, surface: Surface, target: str) -> None:
        self._calls = calls
        self._surface = surface
        self._target = target

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _remote(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._calls.call(self._surface, self._target, method, args, kwargs)


def _forwarder(name: str) -> Callable[..., Any]:
    async def forward(self: RemoteObject, *args: Any, **kwargs: Any) -> Any:
        return await self._remote(name, *args, **kwargs)

    forward.__name__ = name
    return forward


def _not_served(name: str) -> Callable[..., Any]:
    async def refuse(self: RemoteObject, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{name} is not served to nodes; it runs on the listener only")

    refuse.__name__ = name
    return refuse


def remote(surface: Surface, calls: RemoteCalls, target: str, *, base: type[RemoteObject] = RemoteObject) -> Any:
    """An object with the surface's methods, each a call to the listener's object. Typed Any:
    the caller states the class it stands for (``store: WebhookStore = remote(...)``). A
    ``base`` may define some methods itself (sending a big argument in parts).

    It is an instance of the surface's class too (Litestar checks a dependency's type), whose
    constructor never runs: every other async method of the class refuses (NotImplementedError)
    rather than touch a file the node does not have."""
    namespace: dict[str, Any] = {
        name: _not_served(name)
        for name, member in vars(surface.cls).items()
        if inspect.iscoroutinefunction(member) and name not in vars(RemoteObject)
    }
    namespace |= {name: _forwarder(name) for name in surface.methods}
    namespace = {name: value for name, value in namespace.items() if name not in vars(base)}
    proxy_class = type(f"Remote{surface.cls.__name__}", (base, surface.cls), namespace)
    return cast(RemoteObject, proxy_class(calls, surface, target))
