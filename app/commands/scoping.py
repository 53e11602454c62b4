"""Refuse a command a store-limited user may not send (the rules: app/domain/scope.py), before
anything is published. The JSON routes (app/commands/controllers.py) and the pages' forms
(app/web/forms.py) both ask here, so the API and the pages refuse the same commands."""

from __future__ import annotations

from app.auth.tokens import Principal
from app.commands.errors import OutOfScope, RecordNotKnownYet
from app.commands.service import CommandService
from app.domain import scope
from app.domain.catalogue import BY_EVENT_TYPE, CommandRequest
from app.metrics import COMMANDS_REFUSED


async def ensure_in_scope(service: CommandService, principal: Principal, command: CommandRequest) -> None:
    """OutOfScope (403) or RecordNotKnownYet (409) when the principal may not send the command."""
    if not principal.locations:
        return  # every location: nothing to look up
    spec = BY_EVENT_TYPE[command.event_type]
    named = scope.named_record(spec, command)
    record = await service.record_places(*named) if named is not None else None
    refused = scope.refusal(spec, command, principal.locations, record)
    if refused is None:
        return
    COMMANDS_REFUSED.labels(command.event_type.value, refused.reason).inc()
    if refused.reason == scope.RECORD_NOT_KNOWN_YET:
        raise RecordNotKnownYet(refused.message)
    raise OutOfScope(refused.reason, refused.message, refused.location)
