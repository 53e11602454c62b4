"""Webhooks, the pure rules: which events a change makes, the signature, retries, refused
addresses and URLs."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import random
import sys
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from app.domain.records import (
    ItemChange,
    ItemSummary,
    LevelView,
    OutcomeChange,
    ReservationView,
    StockAlert,
    TransferView,
)
from app.domain.webhooks import (
    Backoff,
    Verdict,
    delivery_body,
    events_of,
    refused_address,
    signature_header,
    signed_headers,
    verdict,
    verify_signature,
)
from app.reader import InventoryReader
from app.settings import ConfigError, load_settings
from app.webhooks.controller import NewWebhook
from app.webhooks.dispatcher import Dispatcher, DispatchPolicy
from app.webhooks.service import WebhookError, check_secret
from app.webhooks.store import NewDelivery, WebhookStore, delivery_id
from app.webhooks.urls import WebhookUrlError, check_form, resolve
from tests.support.waiting import eventually

T = "2026-01-01T00:00:00.000Z"
SUMMARY = ItemSummary(
    id="i1", sku="MUG", name="Mug", description="", quantity=3, reserved=1, available=2, version=4,
    created_at=T, updated_at=T, low_stock_threshold=None,
)  # fmt: skip
LEVEL = LevelView("MAIN", 3, 1, 2, 4, T)
REPO = Path(__file__).resolve().parents[2]


def receiver_module() -> ModuleType:
    """examples/webhook_receiver.py, the README's receiver, loaded as it is."""
    spec = importlib.util.spec_from_file_location("webhook_receiver", REPO / "examples" / "webhook_receiver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["webhook_receiver"] = module
    spec.loader.exec_module(module)
    return module


def kinds(change: ItemChange | OutcomeChange) -> list[str]:
    return [event.kind.value for event in events_of(change)]


# --- events of a change ----------------------------------------------------------------------


def test_a_new_item_is_item_created_only() -> None:
    events = events_of(ItemChange("i1", 1, True, False, SUMMARY, [LEVEL], seq=7))
    assert [e.kind.value for e in events] == ["item.created"]
    assert events[0].item_id == "i1"
    assert events[0].data["seq"] == 7 and events[0].data["item"]["sku"] == "MUG"


def test_stock_moving_is_one_stock_changed_with_every_level_and_the_totals() -> None:
    other = LevelView("S001", 5, 0, 5, 2, T)
    events = events_of(ItemChange("i1", 5, False, False, SUMMARY, [LEVEL, other], seq=9))
    assert [e.kind.value for e in events] == ["stock.changed"]
    data = events[0].data
    assert [level["location"] for level in data["levels"]] == ["MAIN", "S001"]
    assert (data["sku"], data["quantity"], data["available"], data["seq"]) == ("MUG", 3, 2, 9)


def test_an_edit_is_item_changed_and_no_stock_event_without_levels() -> None:
    assert kinds(ItemChange("i1", 5, False, False, SUMMARY, [], edited=True)) == ["item.changed"]
    assert kinds(ItemChange("i1", 5, False, False, SUMMARY, [])) == []


def test_a_delete_is_item_deleted_last() -> None:
    assert kinds(ItemChange("i1", 6, False, True, None, [])) == ["item.deleted"]


def test_alerts_become_low_out_and_back_in_stock() -> None:
    alerts = [
        StockAlert(1, "i1", "MUG", "MAIN", "low_stock", 2, 5, "c1", T),
        StockAlert(2, "i1", "MUG", "S001", "out_of_stock", 0, 5, "c1", T),
        StockAlert(3, "i1", "MUG", "S002", "back_in_stock", 9, 5, "c1", T),
    ]
    events = events_of(ItemChange("i1", 5, False, False, SUMMARY, [LEVEL], alerts=alerts))
    assert [e.kind.value for e in events] == ["stock.changed", "stock.low", "stock.out", "stock.back_in_stock"]
    assert events[1].data["alert"]["location"] == "MAIN" and events[2].data["alert"]["available"] == 0


def test_only_expired_reservations_and_received_transfers_make_events() -> None:
    expired = ReservationView("r1", "i1", "MAIN", 0, 0, "expired", None, T, T, T)
    committed = ReservationView("r2", "i1", "MAIN", 0, 0, "committed", None, None, T, T)
    received = TransferView("t1", "i1", "MAIN", "S001", 4, 4, "received", T, T, None)
    shipped = TransferView("t2", "i1", "MAIN", "S001", 4, 0, "in_transit", T, None, None)
    change = ItemChange(
        "i1", 5, False, False, SUMMARY, [LEVEL], reservations=[expired, committed], transfers=[received, shipped]
    )
    events = events_of(change)
    assert [e.kind.value for e in events] == ["stock.changed", "reservation.expired", "transfer.received"]
    assert events[1].data["reservation"]["id"] == "r1" and events[2].data["transfer"]["id"] == "t1"


def test_command_outcomes_make_no_event() -> None:
    outcome = OutcomeChange("c1", "i1", "StockAdjusted", "MAIN", "applied", None, None, 3, T, T)
    assert kinds(outcome) == []


# --- the signature ---------------------------------------------------------------------------


def test_a_signed_body_verifies_and_any_change_breaks_it() -> None:
    body = delivery_body("d1", "stock.changed", T, {"seq": 1})
    header = signature_header("s3cret-s3cret-s3cret", 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature("s3cret-s3cret-s3cret", header, body, now=1_700_000_010)
    assert not verify_signature("s3cret-s3cret-s3cret", header, body + b" ", now=1_700_000_010)
    assert not verify_signature("another-secret-here", header, body, now=1_700_000_010)
    assert not verify_signature(
        "s3cret-s3cret-s3cret", header.replace("t=1700000000", "t=1700000001"), body, now=1_700_000_010
    )
    assert not verify_signature("s3cret-s3cret-s3cret", "v1=abc", body, now=1_700_000_010)


def test_an_old_signature_is_refused_after_the_tolerance() -> None:
    body = b"{}"
    header = signature_header("k" * 20, 1000, body)
    assert verify_signature("k" * 20, header, body, now=1000 + 300)
    assert not verify_signature("k" * 20, header, body, now=1000 + 301)
    assert not verify_signature("k" * 20, header, body, now=1000 - 301)


def test_any_of_several_signatures_may_match() -> None:
    body = b'{"a":1}'
    good = signature_header("k" * 20, 50, body).split("v1=")[1]
    assert verify_signature("k" * 20, f"t=50,v1=deadbeef,v1={good}", body, now=50)


def test_the_headers_carry_the_id_timestamp_and_signature() -> None:
    body = delivery_body("d1", "item.created", T, {"x": 1})
    headers = signed_headers("d1", "k" * 20, 77, body)
    assert headers["Inventory-Webhook-Id"] == "d1"
    assert headers["Inventory-Webhook-Timestamp"] == "77"
    assert verify_signature("k" * 20, headers["Inventory-Webhook-Signature"], body, now=77)
    assert json.loads(body) == {"id": "d1", "type": "item.created", "created_at": T, "data": {"x": 1}}


def test_the_example_receiver_agrees_with_the_product() -> None:
    receiver = receiver_module()
    body = delivery_body("d1", "item.created", T, {"x": 1})
    header = signature_header("k" * 20, 1000, body)
    assert receiver.verify("k" * 20, header, body, now=1000, tolerance=300)
    assert not receiver.verify("k" * 20, header, body + b"x", now=1000, tolerance=300)
    assert not receiver.verify("k" * 20, header, body, now=2000, tolerance=300)


# --- retries ---------------------------------------------------------------------------------


def test_only_2xx_delivers_410_is_gone_and_attempts_run_out() -> None:
    assert verdict(200, 1, 3) is Verdict.DELIVERED
    assert verdict(204, 3, 3) is Verdict.DELIVERED
    assert verdict(500, 1, 3) is Verdict.RETRY
    assert verdict(None, 2, 3) is Verdict.RETRY
    assert verdict(302, 1, 3) is Verdict.RETRY
    assert verdict(500, 3, 3) is Verdict.DEAD
    assert verdict(410, 1, 3) is Verdict.GONE


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(base_seconds=2.0, max_seconds=60.0)
    rng = random.Random(1)
    for attempts, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (40, 60.0)):
        delays = [backoff.delay(attempts, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jitter: not all at once


# --- refused addresses and URLs --------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
        "100.64.0.1", "240.0.0.1", "::1", "fe80::1", "fc00::1", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refused_address(address) is None


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "javascript:alert(1)", "http://", "example.com/x",
     "http://user:pw@example.com/", "http://example.com:0/"],
)  # fmt: skip
def test_urls_that_are_not_http_are_refused(url: str) -> None:
    with pytest.raises(WebhookUrlError):
        check_form(url)


async def test_a_private_address_is_refused_unless_allowed() -> None:
    with pytest.raises(WebhookUrlError, match="loopback"):
        await resolve("http://127.0.0.1:9000/hook", allow_private=False)
    with pytest.raises(WebhookUrlError, match="link-local"):
        await resolve("http://169.254.169.254/latest/meta-data", allow_private=False)
    target = await resolve("http://127.0.0.1:9000/hook", allow_private=True)
    assert target.pinned_url == "http://127.0.0.1:9000/hook" and target.host_header == "127.0.0.1:9000"


async def test_a_name_is_pinned_to_the_address_checked() -> None:
    target = await resolve("http://localhost:9000/hook?x=1", allow_private=True)
    assert target.address in ("127.0.0.1", "::1")
    assert target.host_header == "localhost:9000"
    assert target.pinned_url.endswith(":9000/hook?x=1") and "localhost" not in target.pinned_url
    with pytest.raises(WebhookUrlError):
        await resolve("http://localhost:9000/hook", allow_private=False)


def test_the_settings_read_the_webhook_variables() -> None:
    env = {"INVENTORY_JWT_SECRET": "x" * 40, "INVENTORY_DATA_DIR": "/tmp/unused-webhook-settings"}
    default = load_settings(env)
    assert default.webhooks_allow_private is False and default.webhooks_max_attempts == 12
    chosen = load_settings(
        {**env, "INVENTORY_WEBHOOKS_ALLOW_PRIVATE": "1", "INVENTORY_WEBHOOKS_MAX_ATTEMPTS": "3",
         "INVENTORY_WEBHOOKS_TIMEOUT": "2.5", "INVENTORY_WEBHOOKS_PAUSE_AFTER": "7"}
    )  # fmt: skip
    assert (chosen.webhooks_allow_private, chosen.webhooks_max_attempts) == (True, 3)
    assert (chosen.webhooks_timeout_seconds, chosen.webhooks_pause_after) == (2.5, 7)
    with pytest.raises(ConfigError, match="INVENTORY_WEBHOOKS_ALLOW_PRIVATE"):
        load_settings({**env, "INVENTORY_WEBHOOKS_ALLOW_PRIVATE": "maybe"})
    with pytest.raises(ConfigError, match="INVENTORY_WEBHOOKS_MAX_ATTEMPTS"):
        load_settings({**env, "INVENTORY_WEBHOOKS_MAX_ATTEMPTS": "0"})


async def test_concurrent_writes_to_the_store_neither_fail_nor_undo_each_other(tmp_path: Path) -> None:
    # The dispatcher's workers, its fan-out and the admin API write through one connection at
    # once: every mark must hold (a lost one is a delivery sent again).
    store = WebhookStore(tmp_path / "webhooks.db")
    await store.open()
    try:
        endpoint = await store.add_endpoint("http://127.0.0.1:9/", ["stock.changed"], "s" * 16)

        def new(seq: int) -> NewDelivery:
            the_id = delivery_id(endpoint.id, seq, 0)
            return NewDelivery(endpoint.id, the_id, "stock.changed", f"item-{seq}", b"{}", seq, T)

        assert await store.fan_out(0, 40, [new(seq) for seq in range(1, 41)])
        due = await store.due(endpoint.id, 1e12, 40)
        assert len(due) == 40
        await asyncio.gather(
            *(store.delivered(delivery, 204) for delivery in due[:30]),
            store.delivered_all([(delivery, 200) for delivery in due[30:]]),
            store.fan_out(40, 50, [new(seq) for seq in range(41, 51)]),
            store.add_endpoint("http://127.0.0.1:9/other", ["stock.low"], "t" * 16),
        )
        assert (await store.counts())[endpoint.id] == {"delivered": 40, "pending": 10}
        assert (await store.endpoint(endpoint.id)).delivered == 40 and await store.cursor() == 50
    finally:
        await store.close()


async def test_a_worker_that_dies_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = WebhookStore(tmp_path / "webhooks.db")
    await store.open()
    dispatcher = Dispatcher(store, InventoryReader(tmp_path / "inventory.db"), DispatchPolicy())
    await store.add_endpoint("http://127.0.0.1:9/", ["stock.changed"], "s" * 16)
    with caplog.at_level(logging.ERROR, logger="app.webhooks.dispatcher"):
        await dispatcher.supervise()  # starts the endpoint's worker
        await store.close()  # its next read of the store raises

        async def said() -> bool:
            return any("died" in r.getMessage() and r.exc_info for r in caplog.records)

        await eventually(said, timeout=30)


def test_the_schema_refuses_every_secret_the_service_refuses() -> None:
    # msgspec validates with re.search, where "$" also matches before a trailing newline.
    for secret in ["s" * 16 + "\n", "s" * 15, "s" * 201, "with a space 123456"]:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"url": "http://a.example/", "events": ["stock.changed"], "secret": secret}, NewWebhook)
        with pytest.raises(WebhookError):
            check_secret(secret)
    fine = "whsec_" + "x" * 20
    assert msgspec.convert({"url": "http://a.example/", "events": ["stock.low"], "secret": fine}, NewWebhook).secret
    assert check_secret(fine) == fine
