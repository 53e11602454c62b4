"""The HTTP edge of the command service: typed results and refusals become status codes and the
one error body, in this module only.

A command sent with an Idempotency-Key gets its answer stored here, byte for byte, so a retry
is answered with exactly the same bytes (see ``answer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.types import ExceptionHandlersMap

from app.commands.errors import CommandRefused, IdempotencyKeyReused, OutOfScope, Overloaded, SkuTaken, UnknownItem
from app.commands.service import (
    Accepted,
    AnsweredBefore,
    CommandApplied,
    CommandRejected,
    CommandResult,
    CommandService,
    Submission,
    status_url,
)
from app.domain.events import EventType
from app.eventlog.base import LogUnavailable
from app.http.errors import ApiError, error_body, respond_with_error, unavailable

_encode = msgspec.json.Encoder().encode
# Rejections that name a missing item are 404s; every other rejection is a conflict with the state.
NOT_FOUND_REASONS = frozenset({UnknownItem.reason})


RECORD_HEADERS = {"reservation_id": "X-Reservation-ID", "transfer_id": "X-Transfer-ID"}
# On an answer that knows the outcome: a read of a query node with ``X-Min-Seq`` set to it
# sees the command's effect (app/queries/freshness.py).
SEQ_HEADER = "X-Inventory-Seq"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def response(self) -> Response[bytes]:
        return Response(self.body, status_code=self.status, headers=self.headers, media_type="application/json")


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def reply_for(result: CommandResult, wait_seconds: float) -> Reply:
    if isinstance(result, AnsweredBefore):
        return Reply(result.status, result.headers, result.body)
    headers = {"Location": status_url(result.command_id), "X-Command-ID": result.command_id}
    if result.record is not None:
        # The reservation or transfer the command makes or names, whatever the answer's body.
        key, record_id = result.record
        headers[RECORD_HEADERS[key]] = record_id
    if wait_seconds > 0:
        headers["Preference-Applied"] = f"wait={_seconds(wait_seconds)}"
    if isinstance(result, CommandApplied | CommandRejected) and result.seq:
        headers[SEQ_HEADER] = str(result.seq)
    match result:
        case Accepted():
            accepted = {
                "command_id": result.command_id,
                "item_id": result.item_id,
                "status": "pending",
                "status_url": result.status_url,
            }
            if result.record is not None:
                accepted[result.record[0]] = result.record[1]
            return Reply(202, headers, _encode(accepted))
        case CommandApplied(item=item) if item is not None:
            if result.event_type == EventType.ITEM_CREATED.value:
                headers["Location"] = f"/api/v1/inventory/items/{item.id}"
                return Reply(201, headers, _encode(item))
            return Reply(200, headers, _encode(item))
        case CommandApplied():  # a delete: nothing left to show but the outcome
            body: dict[str, Any] = {
                "command_id": result.command_id,
                "status": "applied",
                "item_id": result.item_id,
                "version": result.version,
                "processed_at": result.processed_at,
            }
            return Reply(200, headers, _encode(body))
        case CommandRejected():
            status = 404 if result.reason in NOT_FOUND_REASONS else 409
            details = {
                "command_id": result.command_id,
                "reason": result.reason,
                "status_url": status_url(result.command_id),
            }
            return Reply(status, headers, _encode(error_body("CommandRejected", result.message, details)))
    raise AssertionError(f"unhandled result {result!r}")


async def answer(service: CommandService, submission: Submission) -> Response[bytes]:
    """Submit, answer, and keep the answer for retries of a command sent with a key."""
    result = await service.submit(submission)
    reply = reply_for(result, submission.wait_seconds)
    if submission.idempotency_key is not None and not isinstance(result, AnsweredBefore):
        await service.keep_reply(result.command_id, reply.status, reply.headers, reply.body)
    return reply.response()


# --- refusals ------------------------------------------------------------------------------


def refusal_error(exc: CommandRefused) -> ApiError:
    match exc:
        case UnknownItem():
            return ApiError(404, exc.message, details={"item_id": exc.item_id, "reason": exc.reason})
        case SkuTaken():
            return ApiError(409, exc.message, details={"sku": exc.sku, "reason": exc.reason})
        case IdempotencyKeyReused():
            return ApiError(422, exc.message, details={"command_id": exc.command_id})
        case Overloaded():  # KeysUnavailable too
            return unavailable(exc.message)
        case OutOfScope():
            return ApiError(403, exc.message, details={"reason": exc.reason, "location": exc.location})
    return ApiError(409, exc.message, details={"reason": exc.reason})


LOG_UNAVAILABLE = "the event log is unavailable; nothing was accepted, retry later"


def _refused(request: Request[Any, Any, Any], exc: CommandRefused) -> Response[Any]:
    return respond_with_error(request, refusal_error(exc))


def _log_unavailable(request: Request[Any, Any, Any], _: LogUnavailable) -> Response[Any]:
    return respond_with_error(request, unavailable(LOG_UNAVAILABLE))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {CommandRefused: _refused, LogUnavailable: _log_unavailable}
