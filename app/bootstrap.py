"""The one place that wires adapters, handlers and background tasks together for a role."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import aiosqlite

from app.auth.kiosk import KioskLinks
from app.auth.login_limits import LoginLimiter
from app.auth.revocation import Revocations
from app.auth.roles import Role
from app.auth.tokens import TokenService
from app.auth.users import UserStore
from app.cache.base import ItemCache
from app.cache.memory import MemoryCache
from app.cache.redis import RedisCache
from app.commands.deadletters import SURFACE as DEAD_LETTERS  # --- node stores
from app.commands.deadletters import DeadLetterReplayer
from app.commands.outcomes import CommandStatus, OutcomeWaiter
from app.commands.redis_store import RedisCommandKeys
from app.commands.service import CommandService
from app.commands.store import CommandLookup, CommandStore
from app.domain.imports import Limits as ImportLimits
from app.domain.webhooks import Backoff
from app.eventlog.base import EventLog, LogUnavailable
from app.eventlog.embedded import EmbeddedEventLog
from app.eventlog.kafka import KafkaEventLog
from app.eventlog.topics import TOPICS
from app.http.internal_calls import CallTargets, RemoteCalls, Served, remote  # --- node stores
from app.imports.service import ImportRunner, ImportService
from app.imports.store import SURFACE as IMPORTS  # --- node stores
from app.imports.store import ImportStore, remote_import_store
from app.listener.relay import OutboxRelay
from app.listener.service import Listener, Retention, RetryPolicy
from app.listener.store import InventoryStore
from app.queries.answer_cache import AnswerCache
from app.queries.feed import ChangeFeed
from app.queries.service import FreshnessFloor, QueryService
from app.reader import InventoryReader, ReadModelUnavailable
from app.replica.client import ListenerClient
from app.replica.follower import Replica
from app.replica.store import ReplicaStore
from app.settings import Settings
from app.sqlitefiles import open_read_only
from app.system.accounts_remote import AccountsMirror, NodeKioskLinks, NodeUserStore  # --- node accounts
from app.webhooks.dispatcher import Dispatcher, DispatchPolicy
from app.webhooks.store import SURFACE as WEBHOOKS  # --- node stores
from app.webhooks.store import WebhookStore

log = logging.getLogger(__name__)

ServiceRole = Literal["all", "command", "query", "listener"]
ROLES: tuple[ServiceRole, ...] = ("all", "command", "query", "listener")


def build_event_log(settings: Settings, client_id: str) -> EventLog:
    if settings.kafka_bootstrap:
        return KafkaEventLog(
            settings.kafka_bootstrap,
            client_id=client_id,
            publish_timeout=settings.publish_timeout_seconds,
            topic_prefix=settings.kafka_topic_prefix,
        )
    return EmbeddedEventLog(settings.event_log_db)


def build_cache(settings: Settings) -> ItemCache:
    if settings.redis_url:
        return RedisCache(settings.redis_url, ttl_seconds=settings.cache_ttl_seconds)
    return MemoryCache(ttl_seconds=settings.cache_ttl_seconds)


@dataclass
class Container:
    settings: Settings
    role: ServiceRole
    event_log: EventLog
    cache: ItemCache
    reader: InventoryReader
    users: UserStore
    tokens: TokenService
    login_limiter: LoginLimiter
    revocations: Revocations
    kiosk_links: KioskLinks
    commands: CommandService | None = None
    command_store: CommandStore | None = None
    # Idempotency-Keys shared by every command node, when Redis is configured.
    command_keys: RedisCommandKeys | None = None
    waiter: OutcomeWaiter | None = None
    status: CommandStatus | None = None
    inventory: InventoryStore | None = None
    relay: OutboxRelay | None = None
    listener: Listener | None = None
    queries: QueryService | None = None
    # Hot API answers held in this process (app/queries/hot_reads.py); with the query role.
    answers: AnswerCache | None = None
    feed: ChangeFeed | None = None
    replayer: DeadLetterReplayer | None = None
    # Webhooks: every role serves the admin API (webhooks.db is shared, like users.db); the
    # listener role also delivers.
    webhooks: WebhookStore | None = None
    dispatcher: Dispatcher | None = None
    # CSV imports: the command role keeps them (imports.db) and applies them.
    imports: ImportService | None = None
    import_runner: ImportRunner | None = None
    # The imports file as the pages read it (read-only outside the command role).
    import_store: ImportStore | None = None
    # Node mode (settings.node, a query or command role): the node's replica of the read model,
    # which its reader reads; commands wait on it with ``replica.wait_for(seq, timeout)``.
    replica: Replica | None = None
    # --- node accounts: the copy of the listener's users.db a node reads (settings.node).
    accounts_mirror: AccountsMirror | None = None
    # --- node stores: a node's client of the listener's calls (webhooks, dead letters, imports);
    # on the listener, the objects it serves them from (app/http/internal_calls.py).
    remote_calls: RemoteCalls | None = None
    internal_targets: CallTargets = field(default_factory=dict)
    topics_ready: bool = False
    _commands_ro: aiosqlite.Connection | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def has(self) -> set[str]:
        return {"command", "query", "listener"} if self.role == "all" else {self.role}

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await self.event_log.start()
        if self.inventory is not None:
            await self.inventory.open()
        # --- node replica: the file exists (the listener's schema) before any reader opens it.
        if self.replica is not None:
            await self.replica.open()
        # --- node accounts: the listener's users.db is copied in before the stores open it.
        if self.accounts_mirror is not None:
            await self.accounts_mirror.start()
            self._spawn(self.accounts_mirror.run(), "accounts-mirror")
        await self.users.open()
        await self.kiosk_links.open()
        if self.webhooks is not None:
            await self.webhooks.open()
        await self.revocations.refresh()
        self._spawn(self.revocations.run(), "token-revocations")
        if self.dispatcher is not None:
            self._spawn(self.dispatcher.run(), "webhook-dispatcher")
        if self.command_store is not None:
            await self.command_store.open()
        if self.import_store is not None:
            await self.import_store.open()
        if self.role == "all" and self.settings.env == "dev":
            await self._first_admin()
        self._spawn(self._consume_once_topics_exist(), "start-consumers")

    async def _consume_once_topics_exist(self) -> None:
        # A consumer that subscribes before its topics exist may not see them for minutes.
        await self._ensure_topics()
        # --- node replica: follows the listener; the feed and the fast checks read what it applied.
        if self.replica is not None:
            self._spawn(self.replica.run(), "replica")
        if self.listener is not None and self.relay is not None:
            self._spawn(self.listener.run(), "listener")
            self._spawn(self.relay.run(), "outbox-relay")
        if self.waiter is not None:
            self._spawn(self.waiter.run(), "outcome-waiter")
        if self.import_runner is not None:
            # Resumes the imports a stopped or killed process left running.
            self._spawn(self.import_runner.run(), "import-runner")
        if self.feed is not None:
            self._spawn(self.feed.run(), "change-feed")

    async def stop(self) -> None:
        await _cancel_all(self._tasks)
        self._tasks.clear()
        if self.command_store is not None:
            await self.command_store.close()
        if self.command_keys is not None:
            await self.command_keys.close()
        if self.import_store is not None:
            await self.import_store.close()
        if self._commands_ro is not None:
            await self._commands_ro.close()
        if self.inventory is not None:
            await self.inventory.close()
        await self.users.close()
        await self.kiosk_links.close()
        # --- node accounts
        if self.accounts_mirror is not None:
            await self.accounts_mirror.close()
        if self.webhooks is not None:
            await self.webhooks.close()
        # --- node stores
        if self.remote_calls is not None:
            await self.remote_calls.close()
        await self.reader.close()
        # --- node replica
        if self.replica is not None:
            await self.replica.close()
        await self.cache.close()
        await self.event_log.stop()

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s died", name)
                raise

        task = asyncio.create_task(guarded(), name=name)
        # A task cancelled before it ever ran never awaited its work: close it quietly.
        task.add_done_callback(lambda _: work.close() if isinstance(work, Coroutine) else None)
        self._tasks.append(task)

    async def _ensure_topics(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.event_log.ensure_topics(TOPICS)
                self.topics_ready = True
                return
            except LogUnavailable as exc:
                log.warning("cannot create topics yet (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _first_admin(self) -> None:
        """A development install needs someone to log in: make an admin with a random password."""
        if await self.users.count() > 0:
            return
        password = os.environ.get("INVENTORY_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        await self.users.add("admin", Role.ADMIN, password)
        path = self.settings.data_dir / "initial-admin-password"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        print(
            f"\n  Created user 'admin' with password: {password}\n  (also in {path}; change it with "
            "'inventory users passwd admin')\n",
            flush=True,
        )

    async def commands_connection(self) -> aiosqlite.Connection | None:
        """The commands file, read-only, for roles that do not own it."""
        if self._commands_ro is None:
            if not self.settings.commands_db.exists():
                return None
            self._commands_ro = await open_read_only(self.settings.commands_db)
        return self._commands_ro

    # --- readiness ------------------------------------------------------------------------

    async def readiness(self) -> dict[str, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {}
        log_ok = await self.event_log.ping()
        log_name = "kafka" if self.settings.kafka_bootstrap else "event_log"
        # Without the log no command can be accepted and the listener cannot work; the query
        # service still answers reads, only its live feed stops.
        log_needed = self.has & {"command", "listener"}
        checks[log_name] = {"status": "ok" if log_ok else ("down" if log_needed else "degraded")}
        try:
            await self.reader.rows("SELECT 1 FROM items LIMIT 1")
            checks["sqlite"] = {"status": "ok"}
        except ReadModelUnavailable as exc:
            checks["sqlite"] = {"status": "down" if "query" in self.has else "degraded", "error": str(exc)}
        if self.settings.redis_url:
            redis_ok = await self.cache.ping()
            checks["redis"] = {
                "status": "ok" if redis_ok else "degraded",
                **({} if redis_ok else {"note": "reads are served from SQLite"}),
            }
        else:
            checks["cache"] = {"status": "ok", "kind": "in-process"}
        if self.listener is not None and self.relay is not None and self.inventory is not None:
            status = self.listener.status
            listener_ok = status.log_connected and status.database_ok
            checks["listener"] = {
                "status": "ok" if listener_ok else "down",
                "consumer_lag": status.lag,
                "applied": status.applied,
                **({"error": status.last_error} if not listener_ok and status.last_error else {}),
            }
            try:
                backlog = await self.inventory.unsent_count()
            except Exception:
                backlog = None
            checks["outbox"] = {"status": "ok", "backlog": backlog}
        # --- node replica: down until its first snapshot, degraded while catching up.
        if self.replica is not None:
            checks["replica"] = self.replica.status()
        if self.feed is not None:
            checks["change_feed"] = {
                "status": "ok" if self.feed.connected else "degraded",
                "last_seq": self.feed.last_seq,
                "subscribers": self.feed.subscribers,
            }
        return checks


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel background tasks and wait for them, cancelling again any that ignored it: a stop must
    never hang on a task that swallowed its cancellation."""
    for _ in range(10):
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
    log.error("tasks still running at shutdown: %s", [t.get_name() for t in tasks if not t.done()])


def build_container(settings: Settings, role: ServiceRole) -> Container:
    event_log = build_event_log(settings, client_id=f"inventory-{role}")
    cache = build_cache(settings)
    # --- node replica: a node reads its own replica, never the listener's file.
    node = settings.node and role in ("query", "command")
    reader = InventoryReader(settings.replica_db if node else settings.inventory_db)
    # --- node accounts: a node reads a copy of the listener's users.db and sends changes there.
    users: UserStore
    kiosk_links: KioskLinks
    mirror = AccountsMirror(settings.listener_url, settings.internal_token, settings.users_db) if node else None
    if mirror is not None:
        users, kiosk_links = NodeUserStore(settings.users_db, mirror), NodeKioskLinks(settings.users_db, mirror)
    else:
        users, kiosk_links = UserStore(settings.users_db), KioskLinks(settings.users_db)
    revocations = Revocations(users, links=kiosk_links)
    container = Container(
        settings=settings,
        role=role,
        event_log=event_log,
        cache=cache,
        reader=reader,
        users=users,
        tokens=TokenService(settings.jwt_secret, settings.jwt_ttl_seconds, revocations),
        login_limiter=LoginLimiter(settings.login_attempts_per_minute),
        revocations=revocations,
        kiosk_links=kiosk_links,
        accounts_mirror=mirror,  # --- node accounts
    )
    has = container.has
    # --- node replica
    if node:
        container.replica = Replica(
            ReplicaStore(settings.replica_db),
            ListenerClient(settings.listener_url, settings.internal_token),
            event_log,
            retention_seconds=settings.changes_retention_seconds,
            scratch=settings.data_dir,
        )
    container.replayer = DeadLetterReplayer(reader, event_log)
    container.webhooks = WebhookStore(settings.webhooks_db)
    # --- node stores: on a node, webhooks.db, the dead letters and imports.db are the listener's,
    # used through its calls; the dispatcher stays on the listener.
    calls = None
    if node:
        calls = RemoteCalls(settings.listener_url, settings.internal_token, max_body_bytes=settings.max_body_bytes)
        container.remote_calls = calls
        container.replayer = remote(DEAD_LETTERS, calls, "dead_letters")
        container.webhooks = remote(WEBHOOKS, calls, "webhooks")
    if "listener" in has:
        container.dispatcher = Dispatcher(container.webhooks, reader, _dispatch_policy(settings))
        container.inventory = InventoryStore(settings.inventory_db, low_stock_threshold=settings.low_stock_threshold)
        container.relay = OutboxRelay(container.inventory, event_log, cache)
        container.listener = Listener(
            event_log,
            container.inventory,
            container.relay,
            batch_size=settings.listener_batch_size,
            orphan_wait=settings.orphan_wait_seconds,
            retry=RetryPolicy(
                max_attempts=settings.listener_max_attempts,
                base_seconds=settings.retry_base_seconds,
                max_seconds=settings.retry_max_seconds,
            ),
            retention=Retention(
                changes_seconds=settings.changes_retention_seconds,
                processed_seconds=settings.dedup_retention_seconds,
            ),
            # The webhook fan-out reads the outbox too: what it has not taken is kept.
            prune_floor=container.dispatcher.prune_floor,
        )
    if "command" in has:
        container.command_store = CommandStore(settings.commands_db)
        store = container.command_store

        lookup = CommandLookup(store.connection)
        container.waiter = OutcomeWaiter(event_log, reader)
        # With Redis, a key's record is in Redis, seen by every command node (docs/scaling.md).
        if settings.redis_url:
            container.command_keys = RedisCommandKeys(settings.redis_url)
        container.commands = CommandService(
            event_log,
            store,
            lookup,
            reader,
            container.waiter,
            locations=settings.locations,
            default_location=settings.default_location,
            keys=container.command_keys,
        )
        container.imports = ImportService(
            remote_import_store(calls) if calls is not None else ImportStore(settings.imports_db),  # --- node stores
            reader,
            places=container.commands.places,
            limits=ImportLimits(max_bytes=settings.import_max_bytes, max_rows=settings.import_max_rows),
        )
        container.import_runner = ImportRunner(
            container.imports, container.commands, reader, rows_per_second=settings.import_rows_per_second
        )
        container.import_store = container.imports.store
    else:
        lookup = CommandLookup(container.commands_connection)
    if has & {"command", "query"}:
        # The query role's answers carry X-Inventory-Seq already (app/queries/freshness.py).
        container.status = CommandStatus(reader, cache, lookup, tells_seq="query" not in has)
    if "query" in has:
        floor = FreshnessFloor()
        container.queries = QueryService(reader, cache, floor)
        if settings.hot_reads_bytes:
            container.answers = AnswerCache(settings.hot_reads_bytes)
            floor.watch(container.answers.forget)
        # In role all the relay fills the shared in-process cache itself; a query process of its
        # own keeps its in-process cache current from the feed.
        feeds_cache = not settings.redis_url and role != "all"
        container.feed = ChangeFeed(event_log, reader, floor, cache if feeds_cache else None)
        # --- node replica: the feed announces what the replica applied, with no consumer of its own.
        if container.replica is not None:
            container.feed.follows_replica = True
            container.replica.subscribe(container.feed)
        if container.import_store is None:
            # --- node stores: a query node reads the listener's imports.db through its calls.
            container.import_store = (
                remote_import_store(calls) if calls is not None else ImportStore(settings.imports_db, read_only=True)
            )
    # --- node stores: the listener keeps imports.db (for its nodes), and serves them the stores.
    if role in ("listener", "all"):
        if container.import_store is None or container.import_store.read_only:
            container.import_store = ImportStore(settings.imports_db)
        container.internal_targets = {
            "webhooks": Served(container.webhooks, WEBHOOKS),
            "dead_letters": Served(container.replayer, DEAD_LETTERS),
            "imports": Served(container.import_store, IMPORTS),
        }
    return container


def _dispatch_policy(settings: Settings) -> DispatchPolicy:
    return DispatchPolicy(
        timeout_seconds=settings.webhooks_timeout_seconds,
        max_attempts=settings.webhooks_max_attempts,
        backoff=Backoff(settings.webhooks_retry_base_seconds, settings.webhooks_retry_max_seconds),
        pause_after=settings.webhooks_pause_after,
        allow_private=settings.webhooks_allow_private,
    )


Factory = Callable[[Settings, ServiceRole], Container]
