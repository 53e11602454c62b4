"""One error shape for every role: ``{"error","message","details"}``; pages and their forms get
the same errors as HTML (a login redirect, or a short message htmx can show)."""

from __future__ import annotations

import html
import logging
import re
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap

from app.domain.catalogue import FieldError, InvalidCommand
from app.reader import ReadModelUnavailable

log = logging.getLogger(__name__)

CODES = {
    400: "ValidationError",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "IdempotencyKeyReused",
    429: "RateLimited",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class ErrorBody(msgspec.Struct):
    """The one error shape of every role."""

    error: Annotated[str, msgspec.Meta(description="machine-readable code, e.g. ValidationError")]
    message: Annotated[str, msgspec.Meta(description="human text")]
    details: list[FieldProblem] | dict[str, Any] | None = None


class ApiError(Exception):
    """An answer other than success, in the one error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error or CODES.get(status, "Error")
        self.message = message
        self.details = details
        self.headers = headers or {}


def unavailable(message: str, retry_after: int = 2) -> ApiError:
    return ApiError(503, message, headers={"Retry-After": str(retry_after)})


def field_errors(errors: list[FieldError]) -> list[dict[str, str]]:
    return [{"field": e.field, "message": e.message} for e in errors]


def error_body(error: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": error, "message": message, "details": details}


def _response(
    status: int, error: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(content=error_body(error, message, details), status_code=status, headers=headers)


def respond_with_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    if not _is_api(request):
        return _html(request, exc.status, exc.message, exc.headers)
    return _response(exc.status, exc.error, exc.message, exc.details, exc.headers)


def _invalid_command(_: Request[Any, Any, Any], exc: InvalidCommand) -> Response[Any]:
    return _response(400, "ValidationError", "the request is invalid", field_errors(exc.errors))


def _read_model(_: Request[Any, Any, Any], exc: ReadModelUnavailable) -> Response[Any]:
    return _response(503, "ServiceUnavailable", str(exc), None, {"Retry-After": "2"})


_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")


def _problem(problem: dict[str, Any]) -> dict[str, str]:
    """msgspec's first error, as a field and a message a person can act on."""
    message = str(problem.get("message", "invalid"))
    field = str(problem.get("key") or "body")
    if field == "data":
        field = "body"
    if match := _MISSING.search(message):
        return {"field": match.group(1), "message": "is required"}
    if match := _UNKNOWN.search(message):
        return {"field": match.group(1), "message": "is not a known field"}
    return {"field": field, "message": message}


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    details = [_problem(p) for p in problems if isinstance(p, dict)]
    if not details:
        text = str(exc.detail)
        if "JSON is malformed" in text or "malformed" in text.lower():
            text = "the body is not valid JSON: " + text.split(":", 1)[-1].strip()
        details = [{"field": "body", "message": text}]
    return _response(400, "ValidationError", "the request is invalid", details)


def _is_api(request: Request[Any, Any, Any]) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/schema", "/metrics"))


def _html(request: Request[Any, Any, Any], status: int, message: str, headers: dict[str, str]) -> Response[Any]:
    """Pages and their forms get HTML: a login redirect, or a short message htmx can show."""
    if status == 401 and not request.url.path.startswith("/ui/"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Response(b"", status_code=303, headers={"Location": "/login?" + urlencode({"next": target})})
    if status == 401:
        headers = {**headers, "HX-Redirect": "/login"}
    body = f'<p class="badge" role="alert"><strong class="state error">{html.escape(message)}</strong></p>'
    return Response(body.encode(), status_code=status, headers=headers, media_type="text/html")


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="inventory"')
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else CODES.get(status, "error")
    if status == 413:
        message = "the request body is too large"
    if isinstance(exc, PermissionDeniedException) and not exc.detail:
        message = "your role does not allow this"
    if not _is_api(request):
        return _html(request, status, message, headers)
    details = None
    if status == 400:
        # Litestar's own 400s (a body that is not JSON at all): same shape as ours.
        details = [{"field": "body", "message": message}]
        message = "the request is invalid"
    if status >= 500:
        log.error("HTTP %s: %s", status, exc.detail)
        message = "the service failed; please retry"
    return _response(status, CODES.get(status, "Error"), message, details, headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _response(500, "InternalError", "the service failed; please retry")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ApiError: respond_with_error,
    InvalidCommand: _invalid_command,
    ReadModelUnavailable: _read_model,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
