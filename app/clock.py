"""Wall-clock time as RFC 3339 UTC strings, the only time format the API and the data use."""

from datetime import UTC, datetime

from app.domain.rules import moment_text


def utc_now() -> str:
    return to_rfc3339(datetime.now(UTC))


def to_rfc3339(moment: datetime) -> str:
    return moment_text(moment)


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
