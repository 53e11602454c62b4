"""Prometheus metrics of every role (served at /metrics)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

COMMANDS_ACCEPTED = Counter("inventory_commands_accepted_total", "Commands answered 202 (durably in the log)", ["type"])
COMMANDS_REFUSED = Counter(
    "inventory_commands_refused_total", "Commands refused before publishing (4xx/503)", ["type", "reason"]
)
OUTCOMES = Counter(
    "inventory_command_outcomes_total",
    "Command outcomes applied by the listener",
    ["type", "status", "reason"],
)
EVENTS_APPLIED = Counter("inventory_events_applied_total", "Events consumed and committed by the listener")
DUPLICATES_SKIPPED = Counter("inventory_events_duplicate_total", "Redelivered or duplicated events skipped")
DEAD_LETTERS = Counter("inventory_dead_letters_total", "Messages sent to the dead-letter topic", ["kind"])
CONFLICTS = Counter("inventory_write_conflicts_total", "Optimistic-lock conflicts retried by the listener")
RETRIES = Counter("inventory_listener_retries_total", "Batches retried after a failure", ["kind"])
PRUNED_ROWS = Counter("inventory_pruned_rows_total", "Rows removed by the retention rules", ["table"])
ADJUSTMENTS = Counter(
    "inventory_adjustments_total", "Changes of stock on hand with a reason (adjust, count, short receipt)", ["reason"]
)
ADJUSTED_UNITS = Counter(
    "inventory_adjusted_units_total", "Units gained or lost on hand, by reason (transit_loss: units lost)", ["reason"]
)
RESERVATIONS_CLOSED = Counter("inventory_reservations_closed_total", "Reservations closed, by how", ["state"])
EXPIRIES_PUBLISHED = Counter("inventory_expiries_published_total", "Reservation expiries published to the log")
CONSUMER_LAG = Gauge("inventory_consumer_lag", "Messages behind the end of the command topics")
OUTBOX_BACKLOG = Gauge("inventory_outbox_backlog", "Change records committed but not yet published")
APPLY_SECONDS = Histogram(
    "inventory_apply_batch_seconds",
    "Time to apply and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CACHE_LOOKUPS = Counter("inventory_cache_lookups_total", "Read-cache lookups", ["result"])
# Hot API reads answered from this process's held answers (app/queries/answer_cache.py).
HOT_READS = Counter("inventory_hot_reads_total", "Hot API reads: held answer used (hit) or not (miss)", ["result"])
SSE_CLIENTS = Gauge("inventory_sse_clients", "Connected server-sent-event clients")
SSE_REFILLS = Counter(
    "inventory_sse_refills_total", "Times a subscriber fell behind, lost queued changes and took them from the outbox"
)

# Every in-process cache, map and queue has a bound (docs/decisions.md, "Memory"): its size and
# its bound, by name, so a dashboard shows one that fills up.
MEMORY_ENTRIES = Gauge("inventory_memory_entries", "Entries held by an in-process cache, map or queue", ["structure"])
MEMORY_BOUND = Gauge("inventory_memory_bound", "The most entries an in-process structure may hold", ["structure"])


def track_size(structure: str, bound: int | None, size: Callable[[], int]) -> None:
    """Export ``size()`` (read when /metrics is scraped) and ``bound`` under ``structure``. No
    bound: one entry per request in progress, which the server's concurrency bounds."""
    if bound is not None:
        MEMORY_BOUND.labels(structure).set(bound)
    MEMORY_ENTRIES.labels(structure).set_function(size)


STREAMS_REFUSED = Counter("inventory_sse_streams_refused_total", "Live streams refused: the user had too many open")

# Low-stock alerts (app/domain/alerts.py) the listener committed, by kind: low_stock,
# out_of_stock, back_in_stock. Counted after the commit, so a retried batch counts once.
STOCK_ALERTS = Counter("inventory_stock_alerts_total", "Stock alerts raised by the listener", ["kind"])

# --- webhooks (app/webhooks/dispatcher.py) ----------------------------------------------------
WEBHOOK_DELIVERIES = Counter(
    "inventory_webhook_deliveries_total",
    "Webhook delivery attempts by result (delivered, retry, dead, gone: a 410 paused the endpoint)",
    ["result"],
)
WEBHOOK_DELAY_SECONDS = Histogram(
    "inventory_webhook_delivery_delay_seconds",
    "From the change's commit to its webhook delivered (retries included)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
)
WEBHOOK_PENDING = Gauge("inventory_webhook_pending", "Webhook deliveries waiting to be sent or retried")

# --- CSV imports (app/imports/service.py) -----------------------------------------------------
IMPORT_ROWS = Counter(
    "inventory_import_rows_total",
    "Rows of confirmed CSV imports by what became of them (submitted, applied, rejected)",
    ["kind", "status"],
)
