"""Why the command service refuses a command before publishing it: domain exceptions, mapped to
HTTP answers in one place (app/commands/edge.py) and to badges by the forms (app/web/forms.py)."""

from __future__ import annotations


class CommandRefused(Exception):
    """Refused at once, without a trip through the log. ``reason`` is part of the API contract."""

    reason = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownItem(CommandRefused):
    reason = "unknown_item"

    def __init__(self, item_id: str) -> None:
        super().__init__("no such item")
        self.item_id = item_id


class SkuTaken(CommandRefused):
    reason = "duplicate_sku"

    def __init__(self, sku: str) -> None:
        super().__init__(f"sku {sku!r} is already taken")
        self.sku = sku


class IdempotencyKeyReused(CommandRefused):
    reason = "idempotency_key_reused"

    def __init__(self, command_id: str) -> None:
        super().__init__("this idempotency key was used with a different request")
        self.command_id = command_id


class Overloaded(CommandRefused):
    """This process holds as many unanswered commands as it may; nothing was accepted."""

    reason = "overloaded"


class OutOfScope(CommandRefused):
    """The user is limited to other locations (app/domain/scope.py); nothing was published."""

    def __init__(self, reason: str, message: str, location: str | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.location = location


class RecordNotKnownYet(CommandRefused):
    """A limited user named a transfer or reservation the read model does not hold yet: where it
    is cannot be checked, so the command is refused until it can (a retry a moment later)."""

    reason = "record_not_known_yet"


class KeysUnavailable(Overloaded):
    """The shared store of Idempotency-Keys (Redis) cannot be reached: a command with a key is
    refused rather than recorded where another command node could not see it. An Overloaded:
    every caller treats it as "nothing accepted, retry later" (a 503 with Retry-After, an import
    that pauses)."""

    reason = "keys_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__("idempotency keys are unavailable; nothing was accepted, retry later")
        self.detail = detail
