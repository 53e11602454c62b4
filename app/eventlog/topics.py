"""The topics the application creates at start-up (names in app/domain/events.py)."""

from app.domain.events import CHANGES_TOPIC, DLQ_TOPIC, ITEMS_TOPIC, STOCK_TOPIC
from app.eventlog.base import TopicSpec

WEEK_MS = 7 * 24 * 3600 * 1000

TOPICS = (
    TopicSpec(ITEMS_TOPIC, partitions=3),
    TopicSpec(STOCK_TOPIC, partitions=3),
    TopicSpec(DLQ_TOPIC, partitions=1),
    # One partition keeps change notifications in commit order; SSE clients resume from the
    # outbox table, so a week of history on the topic is plenty.
    TopicSpec(CHANGES_TOPIC, partitions=1, retention_ms=WEEK_MS),
)

LISTENER_GROUP = "inventory-listener"
