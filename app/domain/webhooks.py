"""Outbound webhooks, the pure part: which events a committed change makes, how a delivery is
signed and checked, how long to wait before trying again, and which addresses are refused.

Pure: no I/O. The dispatcher (app/webhooks/dispatcher.py) reads the outbox, calls ``events_of``
for each change and stores one delivery per subscribed endpoint; a receiver checks a delivery
with ``verify_signature`` (examples/webhook_receiver.py does the same with the standard library).

The signature follows Stripe's scheme: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``,
the timestamp signed with the body so a captured delivery cannot be replayed later than the
receiver's tolerance, and ``v1`` named so the scheme can change without breaking receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from app.domain.records import Change, ItemChange


class EventKind(StrEnum):
    ITEM_CREATED = "item.created"
    ITEM_CHANGED = "item.changed"
    ITEM_DELETED = "item.deleted"
    STOCK_CHANGED = "stock.changed"
    STOCK_LOW = "stock.low"
    STOCK_OUT = "stock.out"
    STOCK_BACK_IN_STOCK = "stock.back_in_stock"
    RESERVATION_EXPIRED = "reservation.expired"
    TRANSFER_RECEIVED = "transfer.received"


EVENT_KINDS: tuple[str, ...] = tuple(kind.value for kind in EventKind)
# app/domain/alerts.py's AlertKind values, as the event kinds they become.
ALERT_EVENTS = {
    "low_stock": EventKind.STOCK_LOW,
    "out_of_stock": EventKind.STOCK_OUT,
    "back_in_stock": EventKind.STOCK_BACK_IN_STOCK,
}

SIGNATURE_HEADER = "Inventory-Webhook-Signature"
ID_HEADER = "Inventory-Webhook-Id"
TIMESTAMP_HEADER = "Inventory-Webhook-Timestamp"
# A receiver refuses a delivery signed longer ago (or further ahead) than this: replay protection.
DEFAULT_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class WebhookEvent:
    """One event a change makes: its kind, the item it is about (deliveries of the same item are
    sent in order) and its ``data`` (plain JSON-ready values)."""

    kind: EventKind
    item_id: str
    data: dict[str, Any]


def _plain(value: msgspec.Struct) -> dict[str, Any]:
    built = msgspec.to_builtins(value)
    assert isinstance(built, dict)
    return built


def events_of(change: Change) -> list[WebhookEvent]:
    """The webhook events of one committed change record, in the order they are delivered.

    Item events first (created, changed), then one ``stock.changed`` for the whole change (every
    level it moved, with the item's totals after it: one event per commit, not per level, so a
    transfer's two levels arrive together), then the alerts, the expired reservations and the
    received transfers, and ``item.deleted`` last. Command outcomes make no event."""
    if not isinstance(change, ItemChange):
        return []
    item_id = change.item_id
    seq = change.seq
    events: list[WebhookEvent] = []
    item = _plain(change.item) if change.item is not None else None
    if change.created and item is not None:
        events.append(WebhookEvent(EventKind.ITEM_CREATED, item_id, {"seq": seq, "item": item}))
    elif change.edited and item is not None and not change.deleted:
        events.append(WebhookEvent(EventKind.ITEM_CHANGED, item_id, {"seq": seq, "item": item}))
    if change.levels and not change.created and not change.deleted:
        levels = [_plain(level) for level in change.levels]
        stock: dict[str, Any] = {"seq": seq, "item_id": item_id, "levels": levels}
        if item is not None:
            stock |= {
                "sku": item["sku"],
                "quantity": item["quantity"],
                "reserved": item["reserved"],
                "available": item["available"],
                "version": item["version"],
            }
        events.append(WebhookEvent(EventKind.STOCK_CHANGED, item_id, stock))
    for alert in change.alerts:
        kind = ALERT_EVENTS.get(alert.kind)
        if kind is not None:
            events.append(WebhookEvent(kind, item_id, {"seq": seq, "alert": _plain(alert)}))
    for reservation in change.reservations:
        if reservation.state == "expired":
            data = {"seq": seq, "reservation": _plain(reservation)}
            events.append(WebhookEvent(EventKind.RESERVATION_EXPIRED, item_id, data))
    for transfer in change.transfers:
        if transfer.state == "received":
            data = {"seq": seq, "transfer": _plain(transfer)}
            events.append(WebhookEvent(EventKind.TRANSFER_RECEIVED, item_id, data))
    if change.deleted:
        events.append(WebhookEvent(EventKind.ITEM_DELETED, item_id, {"seq": seq, "item_id": item_id}))
    return events


# --- the body and its signature --------------------------------------------------------------


class DeliveryBody(msgspec.Struct, frozen=True):
    """What a receiver gets: the same bytes on every attempt (``id`` is the deduplication key)."""

    id: str
    type: str
    created_at: str
    data: dict[str, Any]


_encoder = msgspec.json.Encoder()


def delivery_body(delivery_id: str, kind: str, created_at: str, data: dict[str, Any]) -> bytes:
    return _encoder.encode(DeliveryBody(delivery_id, kind, created_at, data))


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under the endpoint's secret."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def signed_headers(delivery_id: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_header(secret, timestamp, body),
    }


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float, tolerance: float = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """True when ``header`` (``t=...,v1=...``) signs ``body`` under ``secret`` with a timestamp
    within ``tolerance`` seconds of ``now``. Any ``v1`` may match (a header may carry several,
    e.g. while a secret is rotated); comparisons take constant time."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# --- retries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: the n-th retry waits about base * 2^(n-1), at most
    ``max_seconds``; half of it is fixed and half random ("equal jitter"), so receivers coming
    back up are not hit by every sender at once and the total time before a delivery is dead
    stays predictable."""

    base_seconds: float = 2.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        doubling = float(2 ** min(max(attempts - 1, 0), 30))
        ceiling = min(self.max_seconds, self.base_seconds * doubling)
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # try again after a backoff
    DEAD = "dead"  # out of attempts: onto the endpoint's dead-letter list
    GONE = "gone"  # 410: the receiver says the endpoint is gone; pause it now


def verdict(status: int | None, attempts: int, max_attempts: int) -> Verdict:
    """What one attempt's answer means (``status`` None: no answer — refused, timed out, DNS).
    Only a 2xx is a delivery; redirects are not followed (the new address was never checked)."""
    if status is not None and 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 410:
        return Verdict.GONE
    return Verdict.DEAD if attempts >= max_attempts else Verdict.RETRY


# --- addresses that are refused (server-side request forgery) --------------------------------


def refused_address(address: str) -> str | None:
    """Why a webhook may not be sent to this IP address (None: it may). Anything not globally
    routable is refused: private, loopback, link-local (cloud metadata at 169.254.169.254),
    reserved, multicast, unspecified, shared (100.64/10); an IPv4 address mapped or embedded in
    IPv6 is judged as the IPv4 address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    checks = (
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "not globally routable"),
    )
    for refused, why in checks:
        if refused:
            return f"{ip} is a {why} address"
    return None
