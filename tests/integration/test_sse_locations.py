"""A store's live streams carry that store's changes only: a thousand changes at other stores send
nothing to a subscription of S001, neither on the API stream nor on the wall's page stream, while
a change at S001 arrives; resuming a location subscription replays only that location's changes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from tests.integration.test_read_side import SseCollector, wait_for
from tests.integration.test_sse_backpressure import publish_in_batches
from tests.support.app import PASSWORD, base_env
from tests.support.events import adjust, create
from tests.support.processes import ServiceProcess, run_cli

OTHER_CHANGES = 1000
STREAM = "/api/v1/inventory/stream"


class PageCollector:
    """The wall's page stream as a browser reads it: every ``update`` event's HTML."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.updates: list[str] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PageCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5.0, read=60.0)) as client,
                connect_sse(client, "GET", self.url, headers=self.headers) as source,
            ):
                for sse in source.iter_sse():
                    if self._stop.is_set():
                        return
                    if sse.event == "resync":
                        self.connected.set()
                    elif sse.event == "update":
                        self.updates.append(sse.data)
        except (httpx.HTTPError, OSError):
            return  # the service stopped


def _levels_at(events: list[tuple[str, str, dict[str, Any]]]) -> set[str]:
    return {level["location"] for kind, _, data in events if kind == "item" for level in data["levels"]}


def _read(url: str, headers: dict[str, str], until: str) -> list[tuple[str, str, dict[str, Any]]]:
    """A stream's item, outcome and reset events, read until an event with id ``until``."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    with (
        httpx.Client(timeout=httpx.Timeout(5.0, read=30.0)) as client,
        connect_sse(client, "GET", url, headers=headers) as source,
    ):
        for sse in source.iter_sse():
            if sse.event in ("item", "outcome", "reset"):
                events.append((sse.event, sse.id, json.loads(sse.data)))
                if sse.id == until or sse.event == "reset":
                    return events
    return events


def test_a_store_scoped_stream_gets_nothing_from_other_stores(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = base_env(data_dir, INVENTORY_LOCATIONS="MAIN,S001,S002,S003")
    run_cli(env, "users", "add", "viewer", "--role", "viewer", "--password", PASSWORD)
    service = ServiceProcess("all", env, tmp_path / "all.log").start()
    try:
        token = httpx.post(
            f"{service.url}/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD}
        ).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        unknown = httpx.get(f"{service.url}{STREAM}", params={"location": "S001,NOPE"}, headers=auth)
        assert unknown.status_code == 400 and unknown.json()["error"] == "ValidationError"
        assert unknown.json()["details"][0]["field"] == "location"

        store = SseCollector(f"{service.url}{STREAM}?location=s001", auth).start()
        chain = SseCollector(f"{service.url}{STREAM}", auth).start()
        wall = PageCollector(f"{service.url}/ui/stream?view=wall&location=S001", auth).start()
        wait_for(lambda: store.connections == 1 and chain.connections == 1 and wall.connected.is_set())

        # Stocked at S001 too, so a stream of every change would show its changes on the S001 wall.
        elsewhere, here = str(uuid.uuid4()), str(uuid.uuid4())
        publish_in_batches(
            data_dir / "eventlog.db",
            [
                create(elsewhere, "ELSEWHERE", quantity=10, location="S001"),
                create(here, "HERE", quantity=10, location="S001"),
            ],
        )
        wait_for(lambda: sum(1 for html in wall.updates if f"tile-{here}" in html) == 1)
        stores = ("S002", "S003", "MAIN")
        events = [adjust(elsewhere, 1, location=stores[n % 3]) for n in range(OTHER_CHANGES)]
        events.append(adjust(here, -3, location="S001"))
        publish_in_batches(data_dir / "eventlog.db", events)

        # The chain's stream sees every change (totals only) ...
        wait_for(lambda: any(d["version"] == 2 for d in chain.items(here)), timeout=120)
        # ... the store's sees its own change and nothing of the thousand elsewhere.
        wait_for(
            lambda: any(kind == "outcome" and d["item_id"] == here and d["version"] == 2 for kind, _, d in store.events)
        )
        wait_for(lambda: any(f"tile-{here}" in html and ">7<" in html for html in wall.updates))
        time.sleep(0.5)  # anything late would have arrived by now
        for collector in (store, chain, wall):
            collector.stop()

        assert _levels_at(chain.events) == set()
        # (Item records are coalesced per listener batch; outcomes are one per command.)
        assert sum(1 for kind, _, data in chain.events if kind == "outcome" and data["item_id"] == elsewhere) > 1000
        assert max(data["version"] for kind, _, data in chain.events if data["item_id"] == elsewhere) > 1000
        assert _levels_at(store.events) == {"S001"}
        assert all(data["item_id"] != elsewhere or data["version"] == 1 for _, _, data in store.events)
        assert all(data["location"] == "S001" for kind, _, data in store.events if kind == "outcome")
        assert len(store.events) == 6, store.events  # two creates and one adjust, each with its outcome
        assert sum(1 for html in wall.updates if elsewhere in html) == 1  # its create, nothing after

        # Resuming the S001 subscription from the start replays S001's changes only, in order.
        last = store.last_id
        assert last is not None
        replayed = _read(f"{service.url}{STREAM}?location=S001", {**auth, "Last-Event-ID": "0"}, until=last)
        assert "reset" not in {kind for kind, _, _ in replayed}
        ids = [int(event_id) for _, event_id, _ in replayed]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
        assert [(kind, data["seq"]) for kind, _, data in replayed] == [
            (kind, data["seq"]) for kind, _, data in store.events
        ]
        assert _levels_at(replayed) == {"S001"}
    finally:
        service.stop()
