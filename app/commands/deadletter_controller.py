"""Dead letters over HTTP (admin): list them, replay one."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter

from app.auth.roles import Role
from app.auth.tokens import Principal
from app.commands.deadletters import DeadLetterNotFound, DeadLetterReplayer
from app.eventlog.base import LogUnavailable
from app.http.auth import requires
from app.http.errors import ApiError, ErrorBody, unavailable


class DeadLetterBody(msgspec.Struct):
    id: int
    topic: str
    partition: int
    offset: int
    error: str
    attempts: int
    created_at: str
    replayed_at: str | None
    key: str | None
    value_base64: str | None
    headers: dict[str, str]


class ReplayBody(msgspec.Struct):
    dead_letter_id: int
    topic: str
    status: str


def dead_letter_body(letter: dict[str, Any]) -> DeadLetterBody:
    return DeadLetterBody(
        id=letter["id"],
        topic=letter["topic"],
        partition=letter["partition"],
        offset=letter["offset"],
        error=letter["error"],
        attempts=letter["attempts"],
        created_at=letter["created_at"],
        replayed_at=letter["replayed_at"],
        key=letter["key"].decode("utf-8", "replace") if letter["key"] else None,
        value_base64=base64.b64encode(letter["value"]).decode() if letter["value"] is not None else None,
        headers={k: v.decode("utf-8", "replace") for k, v in letter["headers"]},
    )


class DeadLetterController(Controller):
    path = "/api/v1/dead-letters"
    tags = ["dead letters"]
    guards = [requires(Role.ADMIN)]

    @get("", summary="Messages the listener could not apply, newest first")
    async def list_dead_letters(
        self,
        replayer: NamedDependency[DeadLetterReplayer],
        limit: Annotated[int, Parameter(description="1-500, clamped")] = 100,
    ) -> list[DeadLetterBody]:
        return [dead_letter_body(letter) for letter in await replayer.list(limit=max(1, min(limit, 500)))]

    @post(
        "/{letter_id:int}/replay",
        status_code=202,
        summary="Publish a dead letter's original message to its topic again",
        responses={404: ResponseSpec(ErrorBody), 503: ResponseSpec(ErrorBody)},
    )
    async def replay_dead_letter(
        self,
        request: Request[Principal, Any, Any],
        letter_id: FromPath[int],
        replayer: NamedDependency[DeadLetterReplayer],
    ) -> ReplayBody:
        if not 0 < letter_id < 2**62:
            raise ApiError(404, "no such dead letter", details={"id": letter_id})
        try:
            replayed = await replayer.replay(letter_id, actor=request.user.username)
        except DeadLetterNotFound:
            raise ApiError(404, "no such dead letter", details={"id": letter_id}) from None
        except LogUnavailable:
            raise unavailable("the event log is unavailable; retry later") from None
        return ReplayBody(replayed.dead_letter_id, replayed.topic, "replayed")
