"""Settings read once from ``INVENTORY_*`` environment variables.

Every value is checked when the process starts: a bad value stops it with a message that names
the variable, instead of failing later on the first request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from app.domain.rules import LOCATION_PATTERN, normalise_location

Env = Literal["dev", "prod"]
T = TypeVar("T")

MIN_SECRET_LENGTH = 32
PORTS = {"all": 8000, "command": 8080, "query": 8081, "listener": 8082}
# How long the command service keeps an Idempotency-Key's answer. The listener must remember
# applied event ids at least as long, or a retry inside it could republish a forgotten event.
IDEMPOTENCY_KEY_SECONDS = 24 * 3600


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    env: Env = "dev"
    data_dir: Path = Path("data")
    kafka_bootstrap: str | None = None
    kafka_topic_prefix: str = ""
    redis_url: str | None = None
    jwt_secret: str = ""
    jwt_ttl_seconds: int = 3600
    cache_ttl_seconds: int = 300
    log_level: str = "INFO"
    locations: tuple[str, ...] = ("MAIN",)
    default_location: str = "MAIN"
    # How long a stock event waits for its item's create when it overtook it (docs/architecture.md, "The listener").
    orphan_wait_seconds: float = 10.0
    # Upper bound on waiting for the broker's ack before answering 503.
    publish_timeout_seconds: float = 5.0
    max_body_bytes: int = 64 * 1024
    listener_batch_size: int = 2000
    listener_max_attempts: int = 5
    retry_base_seconds: float = 0.05
    retry_max_seconds: float = 5.0
    low_stock_threshold: int = 5
    login_attempts_per_minute: int = 10
    # Changes queued per live-stream subscriber before the oldest are dropped (and refilled from
    # the outbox when the subscriber reads again).
    sse_backlog: int = 2000
    # Live streams (API and pages together) one user may hold open on one process.
    max_streams_per_user: int = 20
    # Bytes of hot API answers each query process holds (app/queries/answer_cache.py); 0: none.
    hot_reads_bytes: int = 32 * 1024 * 1024
    # How long the outbox keeps changes for SSE clients resuming with Last-Event-ID.
    changes_retention_seconds: int = 24 * 3600
    # How long applied event ids are kept to drop duplicates; client retries must come within it.
    dedup_retention_seconds: int = 7 * 24 * 3600
    # Where browsers send commands in the split deployment (empty = same origin).
    command_base_url: str = ""
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    # What the HTTP server reads before it gives up on a request (app/http/limits.py).
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_request_line_bytes: int = 8 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    json_max_depth: int = 32
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or networks).
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    # Bearer token /metrics asks for (empty: /metrics is open).
    metrics_token: str = ""
    # Outbound webhooks (app/webhooks): private, loopback and other non-public receiver addresses
    # are refused unless this is on; the other values shape delivery and retries.
    webhooks_allow_private: bool = False
    webhooks_timeout_seconds: float = 10.0
    webhooks_max_attempts: int = 12
    webhooks_retry_base_seconds: float = 2.0
    webhooks_retry_max_seconds: float = 3600.0
    webhooks_pause_after: int = 5
    # CSV imports (app/imports): the largest file and the most data rows one upload may carry.
    import_max_bytes: int = 10 * 1024 * 1024
    import_max_rows: int = 100_000
    # How fast a confirmed import submits its rows (app/imports/service.py ImportRunner).
    import_rows_per_second: int = 300
    # Scale-out (docs/scaling.md): the listener's HTTP address. Set on a query or command role,
    # it makes that process a node of its own: it keeps a replica of the read model in its own
    # data directory (app/replica/) and reaches accounts through the listener, so it shares no
    # file with any other process.
    listener_url: str = ""
    # How long a read asking for "at least sequence N" waits for this node's replica before
    # answering 503 "behind".
    min_seq_wait_seconds: float = 2.0

    @property
    def node(self) -> bool:
        """True when this process runs without the listener's files (see ``listener_url``)."""
        return bool(self.listener_url)

    @property
    def internal_token(self) -> str:
        """The bearer token between nodes and the listener (snapshots, the outbox, accounts):
        derived from the token secret every process of a deployment already shares."""
        return hashlib.sha256(f"internal:{self.jwt_secret}".encode()).hexdigest()

    @property
    def replica_db(self) -> Path:
        return self.data_dir / "replica.db"

    @property
    def embedded(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def inventory_db(self) -> Path:
        return self.data_dir / "inventory.db"

    @property
    def commands_db(self) -> Path:
        return self.data_dir / "commands.db"

    @property
    def imports_db(self) -> Path:
        return self.data_dir / "imports.db"

    @property
    def webhooks_db(self) -> Path:
        return self.data_dir / "webhooks.db"

    @property
    def users_db(self) -> Path:
        return self.data_dir / "users.db"

    @property
    def event_log_db(self) -> Path:
        return self.data_dir / "eventlog.db"


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _parsed(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T, what: str) -> T:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise ValueError
        return value

    return parse


_positive_int = _at_least(1)


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (_text(env, name) or "0").lower()
    if raw not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")
    return raw in ("1", "true", "yes", "on")


def _jwt_secret(env: Mapping[str, str], app_env: Env, data_dir: Path) -> str:
    secret = _text(env, "INVENTORY_JWT_SECRET")
    if secret is not None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"INVENTORY_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        if app_env == "prod" and secret.startswith("dev-"):
            raise ConfigError("INVENTORY_JWT_SECRET looks like a development secret; prod refuses it")
        return secret
    if app_env == "prod":
        raise ConfigError("INVENTORY_JWT_SECRET must be set when INVENTORY_ENV=prod")
    # In dev every role on this machine shares the data directory, so a secret generated once
    # and kept there is valid on every role without anyone choosing a weak default.
    path = data_dir / ".jwt-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # The roles of a local stack start together: the file appears whole (written aside,
        # then linked into place) and the first role to link it wins, so none reads it half
        # written and all end with the same secret.
        draft = data_dir / f".jwt-secret.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("dev-" + secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{path} holds no usable secret; delete it and start again")
    return secret


def _locations(env: Mapping[str, str]) -> tuple[tuple[str, ...], str]:
    raw = _text(env, "INVENTORY_LOCATIONS") or "MAIN"
    codes = tuple(normalise_location(code) for code in raw.split(",") if code.strip())
    bad = [code for code in codes if not LOCATION_PATTERN.match(code)]
    if not codes or bad:
        raise ConfigError(
            f"INVENTORY_LOCATIONS must be a comma-separated list of codes like MAIN,S001 (bad: {bad or raw!r})"
        )
    if len(set(codes)) != len(codes):
        raise ConfigError("INVENTORY_LOCATIONS lists a location twice")
    default = normalise_location(_text(env, "INVENTORY_DEFAULT_LOCATION") or codes[0])
    if default not in codes:
        raise ConfigError(f"INVENTORY_DEFAULT_LOCATION {default!r} is not in INVENTORY_LOCATIONS")
    return codes, default


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _text(env, name) or ""
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(
                f"{name} must be IP addresses or networks like 10.0.0.5,10.1.0.0/16, got {part!r}"
            ) from None
    return tuple(networks)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise ConfigError naming the first bad variable."""
    env = os.environ if env is None else env
    app_env = (_text(env, "INVENTORY_ENV") or "dev").lower()
    if app_env not in ("dev", "prod"):
        raise ConfigError(f"INVENTORY_ENV must be 'dev' or 'prod', got {app_env!r}")
    checked_env: Env = "prod" if app_env == "prod" else "dev"
    data_dir = Path(_text(env, "INVENTORY_DATA_DIR") or "data").expanduser().resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"INVENTORY_DATA_DIR {str(data_dir)!r} is not a directory")

    kafka = _text(env, "INVENTORY_KAFKA_BOOTSTRAP")
    if kafka is not None and not re.match(r"^[\w.-]+:\d{1,5}(,[\w.-]+:\d{1,5})*$", kafka):
        raise ConfigError(f"INVENTORY_KAFKA_BOOTSTRAP must look like host:port[,host:port], got {kafka!r}")
    prefix = _text(env, "INVENTORY_KAFKA_TOPIC_PREFIX") or ""
    if not re.match(r"^[A-Za-z0-9._-]{0,100}$", prefix):
        raise ConfigError(f"INVENTORY_KAFKA_TOPIC_PREFIX may only hold A-Z a-z 0-9 . _ -, got {prefix!r}")
    redis_url = _text(env, "INVENTORY_REDIS_URL")
    if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"INVENTORY_REDIS_URL must start with redis://, rediss:// or unix://, got {redis_url!r}")
    log_level = (_text(env, "INVENTORY_LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"INVENTORY_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    locations, default_location = _locations(env)
    cors = tuple(o.strip() for o in (_text(env, "INVENTORY_CORS_ORIGINS") or "").split(",") if o.strip())

    return Settings(
        env=checked_env,
        data_dir=data_dir,
        kafka_bootstrap=kafka,
        kafka_topic_prefix=prefix,
        redis_url=redis_url,
        jwt_secret=_jwt_secret(env, checked_env, data_dir),
        jwt_ttl_seconds=_parsed(env, "INVENTORY_JWT_TTL", _positive_int, 3600, "a positive number of seconds"),
        cache_ttl_seconds=_parsed(env, "INVENTORY_CACHE_TTL", _positive_int, 300, "a positive number of seconds"),
        log_level=log_level,
        locations=locations,
        default_location=default_location,
        orphan_wait_seconds=_parsed(env, "INVENTORY_ORPHAN_WAIT", _positive_float, 10.0, "a positive number"),
        publish_timeout_seconds=_parsed(
            env, "INVENTORY_PUBLISH_TIMEOUT", _positive_float, 5.0, "a positive number of seconds"
        ),
        max_body_bytes=_parsed(env, "INVENTORY_MAX_BODY_BYTES", _positive_int, 64 * 1024, "a positive integer"),
        listener_batch_size=_parsed(env, "INVENTORY_LISTENER_BATCH", _positive_int, 2000, "a positive integer"),
        listener_max_attempts=_parsed(env, "INVENTORY_LISTENER_MAX_ATTEMPTS", _positive_int, 5, "a positive integer"),
        retry_base_seconds=_parsed(env, "INVENTORY_RETRY_BASE", _positive_float, 0.05, "a positive number"),
        retry_max_seconds=_parsed(env, "INVENTORY_RETRY_MAX", _positive_float, 5.0, "a positive number"),
        low_stock_threshold=_parsed(env, "INVENTORY_LOW_STOCK_THRESHOLD", _positive_int, 5, "a positive integer"),
        login_attempts_per_minute=_parsed(
            env, "INVENTORY_LOGIN_ATTEMPTS_PER_MINUTE", _positive_int, 10, "a positive integer"
        ),
        sse_backlog=_parsed(env, "INVENTORY_SSE_BACKLOG", _positive_int, 2000, "a positive integer"),
        max_streams_per_user=_parsed(env, "INVENTORY_MAX_STREAMS_PER_USER", _positive_int, 20, "a positive integer"),
        hot_reads_bytes=_parsed(env, "INVENTORY_HOT_READS_MB", _at_least(0), 32, "a whole number of MiB (0: none)")
        * 1024
        * 1024,
        changes_retention_seconds=_parsed(
            env, "INVENTORY_CHANGES_RETENTION", _positive_int, 24 * 3600, "a positive number of seconds"
        ),
        dedup_retention_seconds=_parsed(
            env,
            "INVENTORY_DEDUP_RETENTION",
            _at_least(IDEMPOTENCY_KEY_SECONDS),
            7 * 24 * 3600,
            f"a number of seconds of at least {IDEMPOTENCY_KEY_SECONDS} (how long an Idempotency-Key lives)",
        ),
        command_base_url=(_text(env, "INVENTORY_COMMAND_BASE_URL") or "").rstrip("/"),
        cors_origins=cors,
        max_header_bytes=_parsed(env, "INVENTORY_MAX_HEADER_BYTES", _at_least(1024), 16 * 1024, "at least 1024"),
        max_headers=_parsed(env, "INVENTORY_MAX_HEADERS", _at_least(10), 100, "an integer of at least 10"),
        max_request_line_bytes=_parsed(
            env, "INVENTORY_MAX_REQUEST_LINE_BYTES", _at_least(256), 8 * 1024, "at least 256"
        ),
        header_timeout_seconds=_parsed(
            env, "INVENTORY_HEADER_TIMEOUT", _positive_float, 10.0, "a positive number of seconds"
        ),
        body_timeout_seconds=_parsed(
            env, "INVENTORY_BODY_TIMEOUT", _positive_float, 30.0, "a positive number of seconds"
        ),
        json_max_depth=_parsed(env, "INVENTORY_JSON_MAX_DEPTH", _at_least(2), 32, "an integer of at least 2"),
        trusted_proxies=_networks(env, "INVENTORY_TRUSTED_PROXIES"),
        metrics_token=_text(env, "INVENTORY_METRICS_TOKEN") or "",
        webhooks_allow_private=_flag(env, "INVENTORY_WEBHOOKS_ALLOW_PRIVATE"),
        webhooks_timeout_seconds=_parsed(
            env, "INVENTORY_WEBHOOKS_TIMEOUT", _positive_float, 10.0, "a positive number of seconds"
        ),
        webhooks_max_attempts=_parsed(env, "INVENTORY_WEBHOOKS_MAX_ATTEMPTS", _positive_int, 12, "a positive integer"),
        webhooks_retry_base_seconds=_parsed(
            env, "INVENTORY_WEBHOOKS_RETRY_BASE", _positive_float, 2.0, "a positive number of seconds"
        ),
        webhooks_retry_max_seconds=_parsed(
            env, "INVENTORY_WEBHOOKS_RETRY_MAX", _positive_float, 3600.0, "a positive number of seconds"
        ),
        webhooks_pause_after=_parsed(env, "INVENTORY_WEBHOOKS_PAUSE_AFTER", _positive_int, 5, "a positive integer"),
        import_max_bytes=_parsed(
            env, "INVENTORY_IMPORT_MAX_BYTES", _positive_int, 10 * 1024 * 1024, "a positive number of bytes"
        ),
        import_max_rows=_parsed(env, "INVENTORY_IMPORT_MAX_ROWS", _positive_int, 100_000, "a positive integer"),
        import_rows_per_second=_parsed(
            env, "INVENTORY_IMPORT_ROWS_PER_SECOND", _positive_int, 300, "a positive number of rows per second"
        ),
        listener_url=_listener_url(env),
        min_seq_wait_seconds=_parsed(
            env, "INVENTORY_MIN_SEQ_WAIT", _positive_float, 2.0, "a positive number of seconds"
        ),
    )


def _listener_url(env: Mapping[str, str]) -> str:
    url = (_text(env, "INVENTORY_LISTENER_URL") or "").rstrip("/")
    if url and not re.match(r"^https?://[^/\s]+$", url):
        raise ConfigError(f"INVENTORY_LISTENER_URL must look like http://host:port, got {url!r}")
    if url and _text(env, "INVENTORY_KAFKA_BOOTSTRAP") is None:
        raise ConfigError("INVENTORY_LISTENER_URL needs INVENTORY_KAFKA_BOOTSTRAP (nodes follow it over Kafka)")
    return url
