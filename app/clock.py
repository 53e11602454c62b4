"""Wall-clock time as RFC 3339 UTC strings, the only time format the API and the data use."""

from datetime import UTC, datetime


def utc_now() -> str:
    return to_rfc3339(datetime.now(UTC))


def to_rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
