"""Realistic demo data: a catalogue of items stocked across the stores, some of them low, some
deliveries on their way from the warehouse and some orders holding stock for a while.

Published as ordinary command events, so the listener applies them like any other command
(with the actor "demo").
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.clock import utc_now
from app.domain.catalogue import ItemCreatedData, StockAdjustedData
from app.domain.catalogue.stock import StockReservedData
from app.domain.catalogue.transfers import StockTransferData
from app.domain.events import Event, EventType, encode_event
from app.domain.model import AdjustmentReason
from app.domain.rules import moment_text
from app.eventlog.base import EventLog, Message
from app.eventlog.topics import TOPICS

CATEGORIES = {
    "TSH": ("T-shirt", ["XS", "S", "M", "L", "XL"]),
    "JNS": ("Jeans", ["28", "30", "32", "34", "36"]),
    "SNK": ("Sneakers", ["38", "39", "40", "41", "42", "43", "44"]),
    "MUG": ("Mug", ["300ml", "450ml"]),
    "NBK": ("Notebook", ["A5", "A4"]),
    "CAP": ("Cap", ["S/M", "L/XL"]),
    "SCF": ("Scarf", ["one size"]),
    "BAG": ("Tote bag", ["one size"]),
    "SCK": ("Socks", ["35-38", "39-42", "43-46"]),
    "HOD": ("Hoodie", ["S", "M", "L", "XL"]),
}
COLOURS = {
    "black": "BLK", "white": "WHT", "navy": "NVY", "red": "RED", "green": "GRN", "grey": "GRY", "sand": "SND",
    "sky blue": "SKY", "olive": "OLV", "burgundy": "BRG",
}  # fmt: skip
BATCH = 500


@dataclass(frozen=True)
class DemoPlan:
    items: int
    locations: tuple[str, ...]
    events: list[Event]


def _event(event_type: EventType, item_id: str, location: str, data: object) -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        item_id=item_id,
        location=location,
        command_id=str(uuid.uuid4()),
        request_id="demo",
        actor="demo",
        occurred_at=utc_now(),
        data=data,  # type: ignore[arg-type]
    )


def plan_demo(locations: tuple[str, ...], *, items: int = 2000, seed: int = 7) -> DemoPlan:
    """Creates at the first location (the warehouse) and deliveries to the stores; about one
    level in eight is low and one in forty empty."""
    rng = random.Random(seed)
    warehouse, stores = locations[0], locations[1:]
    events: list[Event] = []
    catalogue = [
        (code, name, colour, size) for code, (name, sizes) in CATEGORIES.items() for colour in COLOURS for size in sizes
    ]
    rng.shuffle(catalogue)
    for n in range(items):
        code, name, colour, size = catalogue[n % len(catalogue)]
        series = n // len(catalogue)
        size_code = size.replace("/", "").replace(" ", "").upper()
        sku = f"{code}-{COLOURS[colour]}-{size_code}" + (f"-{series}" if series else "")
        item_id = str(uuid.uuid4())
        threshold = rng.choice([None, None, None, 3, 5, 10])
        data = ItemCreatedData(
            sku=sku,
            name=f"{name}, {colour}, {size}",
            description=f"{name} in {colour}",
            quantity=rng.randint(20, 400),
            low_stock_threshold=threshold,
        )
        events.append(_event(EventType.ITEM_CREATED, item_id, warehouse, data))
        for store in stores:
            roll = rng.random()
            quantity = 0 if roll < 0.025 else rng.randint(1, 4) if roll < 0.15 else rng.randint(6, 60)
            if quantity:
                delivery = StockAdjustedData(quantity, AdjustmentReason.RECEIVED.value)
                events.append(_event(EventType.STOCK_ADJUSTED, item_id, store, delivery))
            if quantity >= 6 and rng.random() < 0.05:
                # An online order collected in this store, held for two hours.
                expires = moment_text(datetime.now(UTC) + timedelta(hours=2))
                order = StockReservedData(
                    rng.randint(1, 2), reference=f"ORDER-{rng.randint(10000, 99999)}", expires_at=expires
                )
                events.append(_event(EventType.STOCK_RESERVED, item_id, store, order))
        if stores and rng.random() < 0.05:
            shipment = StockTransferData(
                quantity=rng.randint(5, 15), from_location=warehouse, to_location=rng.choice(stores)
            )
            events.append(_event(EventType.TRANSFER_SHIPPED, item_id, warehouse, shipment))
    return DemoPlan(items=items, locations=locations, events=events)


async def load_demo(event_log: EventLog, locations: tuple[str, ...], *, items: int = 2000) -> DemoPlan:
    plan = plan_demo(locations, items=items)
    await event_log.ensure_topics(TOPICS)
    # Creates first: stock events may overtake them across topics, and would then wait.
    ordered = sorted(plan.events, key=lambda e: e.event_type is not EventType.ITEM_CREATED)
    for start in range(0, len(ordered), BATCH):
        await event_log.publish(
            [
                Message(e.topic, e.item_id.encode(), encode_event(e), tuple(e.headers()))
                for e in ordered[start : start + BATCH]
            ]
        )
    return plan
