"""How big each part of a run is: ``small`` proves the harness works in well under a minute,
``full`` is the benchmark whose figures are recorded under ``bench/results/``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    # Items created before anything is measured; every workload draws from this pool.
    items: int
    # More items that nobody reads before the cold-cache read test.
    cold_items: int
    # Memory: items created (straight into the command topics) and read once before each role's
    # resident memory is read.
    memory_items: int
    # 0. Side by side with the Go prototypes: each row (one URL, hey) for this long.
    versus_seconds: float
    # 1. Commands: closed loop, one coroutine per client, for this long per level.
    command_clients: tuple[int, ...]
    command_seconds: float
    # 2. Listener catch-up: events produced into the command topics while the listener is stopped.
    backlog_events: int
    # 3. Freshness: open loop at these offered loads (commands/s), for this long each.
    freshness_rates: tuple[int, ...]
    freshness_seconds: float
    # GET polling is sampled so that the probes do not become the load: this many commands/s
    # are followed by polling, every ``freshness_poll_seconds``.
    freshness_get_samples_per_second: float
    freshness_poll_seconds: float
    # 4. Reads: closed loop with this many clients, for this long per case.
    read_clients: int
    read_seconds: float
    # 5. SSE fan-out: subscriber counts, commands sent to each group, subscribers per process.
    fanout_subscribers: tuple[int, ...]
    fanout_commands: int
    subscribers_per_process: int
    # How long to wait for the listener to apply everything accepted before giving up.
    drain_timeout: float


SMALL = Size(
    name="small",
    memory_items=300,
    versus_seconds=0.5,
    items=40,
    cold_items=40,
    command_clients=(1, 16, 64, 256),
    command_seconds=0.5,
    backlog_events=2_000,
    freshness_rates=(50, 100),
    freshness_seconds=1.0,
    freshness_get_samples_per_second=20.0,
    freshness_poll_seconds=0.005,
    read_clients=64,
    read_seconds=0.5,
    fanout_subscribers=(10, 50),
    fanout_commands=3,
    subscribers_per_process=2_500,
    drain_timeout=60.0,
)

FULL = Size(
    name="full",
    memory_items=100_000,
    versus_seconds=10.0,
    items=5_000,
    cold_items=2_000,
    command_clients=(1, 16, 64, 256),
    command_seconds=10.0,
    backlog_events=100_000,
    freshness_rates=(100, 1_000, 2_000),
    freshness_seconds=10.0,
    freshness_get_samples_per_second=25.0,
    freshness_poll_seconds=0.005,
    read_clients=64,
    read_seconds=8.0,
    fanout_subscribers=(100, 1_000, 5_000),
    fanout_commands=20,
    subscribers_per_process=2_500,
    drain_timeout=600.0,
)

SIZES = {size.name: size for size in (SMALL, FULL)}
