"""docker-compose.yml and Dockerfile: the structure the Docker set-up depends on.

No Docker engine is needed. The files are parsed and held against the application itself: its
command line (every service's command must parse), its settings (every role's environment must
load), its default ports and its packaging (the image installs the package the way
scripts/setup.sh does).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.cli import parser
from app.settings import PORTS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ROLES = ("command", "query", "listener")
# The scaled-out services: replicas with data of their own, reached through the `edge` proxy.
NODES = ("command", "query")
EDGE = "edge"
# service -> port published on the host
PUBLISHED = {"listener": 8082, "kafka-ui": 8090}
# role -> port the edge proxy publishes for it (the same as the role's own)
THROUGH_EDGE = {"command": 8080, "query": 8081}
INTERNAL_ONLY = ("kafka", "redis", *NODES)
# Services that run once and exit need no healthcheck; there are none at the moment.
ONE_SHOT: frozenset[str] = frozenset()
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|API_KEY", re.IGNORECASE)
FAKE_SECRET = "f" * 64


# --- compose helpers --------------------------------------------------------------------------

VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(LookupError):
    pass


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: ${V}, ${V:-default}, ${V-default}, ${V:?error}, ${V?error}, $$."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        is_set = current not in (None, "") if op and op.startswith(":") else current is not None
        if is_set:
            return str(current)
        if op is None:
            return ""
        if op.endswith("-"):
            return arg
        raise MissingVariable(f"{name}: {arg}")

    return VARIABLE.sub(substitute, value)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as written (before substitution), list or mapping form."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(entry).split("=", 1) for entry in raw)
        return {key: value for key, value in pairs}
    return {
        str(key): "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in raw.items()
    }


def resolved_environment(service: Mapping[str, Any], shell: Mapping[str, str]) -> dict[str, str]:
    return {key: interpolate(value, shell) for key, value in environment(service).items()}


@dataclass(frozen=True)
class Port:
    host_ip: str | None
    published: int | None
    target: int


def ports(service: Mapping[str, Any]) -> list[Port]:
    result: list[Port] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            result.append(Port(entry.get("host_ip"), int(published) if published else None, int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) == 1:
            result.append(Port(None, None, int(parts[0])))
        elif len(parts) == 2:
            result.append(Port(None, int(parts[0]), int(parts[1])))
        else:
            result.append(Port(":".join(parts[:-2]), int(parts[-2]), int(parts[-1])))
    return result


@dataclass(frozen=True)
class Mount:
    kind: str
    source: str
    target: str
    read_only: bool


def mounts(service: Mapping[str, Any], named: set[str]) -> list[Mount]:
    result: list[Mount] = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            result.append(
                Mount(
                    entry.get("type", "volume"), entry.get("source", ""), entry["target"], bool(entry.get("read_only"))
                )
            )
            continue
        source, target, *mode = str(entry).split(":")
        kind = "volume" if source in named else "bind"
        result.append(Mount(kind, source, target, "ro" in ",".join(mode).split(",")))
    return result


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """service -> condition (the short list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def healthcheck_words(service: Mapping[str, Any]) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test")
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(word) for word in test or []]


def kafka_listeners(value: str) -> dict[str, tuple[str, int]]:
    """'PLAINTEXT://:9092,CONTROLLER://kafka:9093' -> {'PLAINTEXT': ('', 9092), ...}"""
    result: dict[str, tuple[str, int]] = {}
    for entry in value.split(","):
        name, address = entry.strip().split("://", 1)
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def named_volumes(compose: dict[str, Any]) -> set[str]:
    return set(compose.get("volumes") or {})


def role_env(services: Mapping[str, Any], role: str) -> dict[str, str]:
    return resolved_environment(services[role], {"INVENTORY_JWT_SECRET": FAKE_SECRET})


# --- compose: services, images, ports -----------------------------------------------------------


def test_compose_file_is_a_compose_spec_file_with_every_service(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the compose specification has no version key"
    assert set(compose["services"]) >= {"kafka", "redis", "kafka-ui", *ROLES}


def test_images_are_pinned_and_the_broker_is_the_one_the_tests_use(services: dict[str, dict[str, Any]]) -> None:
    pom = (ROOT / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match, "kafka/pom.xml names the broker version"
    assert services["kafka"]["image"] == f"apache/kafka:{match.group(1)}"
    for name in ("redis", "kafka-ui", EDGE):
        image = str(services[name]["image"])
        _, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name} image {image!r} is not pinned"


def test_the_three_roles_run_the_image_built_from_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    images = set()
    for role in ROLES:
        build = services[role]["build"]
        context, dockerfile = (
            (build, "Dockerfile")
            if isinstance(build, str)
            else (build["context"], build.get("dockerfile", "Dockerfile"))
        )
        assert (ROOT / context / dockerfile).resolve() == DOCKERFILE
        assert "entrypoint" not in services[role], "the image's `inventory` entrypoint is used"
        images.add(services[role].get("image"))
    assert len(images) == 1, "one image for all roles"


def test_web_ports_are_published_and_kafka_and_redis_stay_internal(services: dict[str, dict[str, Any]]) -> None:
    for name, host_port in PUBLISHED.items():
        assert host_port in {port.published for port in ports(services[name])}, f"{name} publishes {host_port}"
    for role, host_port in THROUGH_EDGE.items():
        assert Port(None, host_port, host_port) in ports(services[EDGE]), f"edge publishes {role} on {host_port}"
    for name in INTERNAL_ONLY:
        assert not services[name].get("ports"), f"{name} must not be published on the host"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_serves_its_role_on_its_port(services: dict[str, dict[str, Any]], role: str) -> None:
    command = [str(word) for word in services[role]["command"]]
    args = parser().parse_args(command)
    assert (args.command, args.role, args.host) == ("serve", role, "0.0.0.0")
    if role in THROUGH_EDGE:
        # Published by the proxy in front of the replicas, on the role's own port.
        assert args.port == PORTS[role] == THROUGH_EDGE[role]
        assert Port(None, THROUGH_EDGE[role], args.port) in ports(services[EDGE])
        assert args.shared_port is None, "the proxy spreads the load; SO_REUSEPORT is for one host"
    else:
        assert args.port == PORTS[role] == PUBLISHED[role]
        assert Port(None, PUBLISHED[role], args.port) in ports(services[role])


# --- compose: configuration of the roles --------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_role_environment_loads_and_points_at_the_kafka_and_redis_services(
    services: dict[str, dict[str, Any]], role: str
) -> None:
    env = role_env(services, role)
    settings = load_settings(env)
    assert settings.data_dir == Path("/data")
    assert settings.jwt_secret == FAKE_SECRET

    assert settings.kafka_bootstrap is not None
    kafka = services["kafka"]
    kafka_env = resolved_environment(kafka, {})
    listening = kafka_listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = kafka_listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    controller_names = set(kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    for address in settings.kafka_bootstrap.split(","):
        host, _, port = address.rpartition(":")
        assert host in ("kafka", kafka.get("hostname")), f"{address} is not the kafka service"
        names = [name for name, (_, listen_port) in listening.items() if listen_port == int(port)]
        assert names and names[0] not in controller_names, f"kafka listens for clients on {port}"
        # Clients reconnect to the advertised address: it must be reachable on this network too.
        assert advertised[names[0]] == (host, int(port))

    assert settings.redis_url is not None
    redis_url = urlsplit(settings.redis_url)
    assert redis_url.scheme == "redis" and redis_url.hostname == "redis"
    redis_command = [str(word) for word in services["redis"].get("command") or []]
    redis_port = redis_command[redis_command.index("--port") + 1] if "--port" in redis_command else "6379"
    assert (redis_url.port or 6379) == int(redis_port)


@pytest.mark.parametrize("role", ROLES)
def test_roles_get_the_request_limits_of_inventory_serve(services: dict[str, dict[str, Any]], role: str) -> None:
    """Unset, the limits are the defaults `inventory serve` has; set on the host, they reach the role."""
    names = [
        "INVENTORY_MAX_HEADER_BYTES", "INVENTORY_MAX_HEADERS", "INVENTORY_MAX_REQUEST_LINE_BYTES",
        "INVENTORY_MAX_BODY_BYTES", "INVENTORY_HEADER_TIMEOUT", "INVENTORY_BODY_TIMEOUT",
        "INVENTORY_JSON_MAX_DEPTH", "INVENTORY_TRUSTED_PROXIES", "INVENTORY_METRICS_TOKEN",
    ]  # fmt: skip
    defaults = Settings()
    settings = load_settings(role_env(services, role))
    assert (settings.max_header_bytes, settings.header_timeout_seconds, settings.body_timeout_seconds) == (
        defaults.max_header_bytes, defaults.header_timeout_seconds, defaults.body_timeout_seconds,
    )  # fmt: skip
    assert settings.trusted_proxies == () and settings.metrics_token == ""
    chosen = resolved_environment(
        services[role],
        {
            "INVENTORY_JWT_SECRET": FAKE_SECRET,
            "INVENTORY_HEADER_TIMEOUT": "3",
            "INVENTORY_TRUSTED_PROXIES": "10.0.0.0/8",
        },
    )
    assert all(name in chosen for name in names)
    assert load_settings(chosen).header_timeout_seconds == 3
    assert load_settings(chosen).trusted_proxies == ("10.0.0.0/8",)


def test_only_the_listener_has_a_data_volume_and_each_node_one_of_its_own(
    services: dict[str, dict[str, Any]], named_volumes: set[str]
) -> None:
    """No volume is shared: the nodes never open the listener's files (docs/scaling.md)."""
    (listener_data,) = [mount for mount in mounts(services["listener"], named_volumes) if mount.target == "/data"]
    assert listener_data.kind == "volume" and listener_data.source in named_volumes
    assert not listener_data.read_only
    for role in NODES:
        data = [mount for mount in mounts(services[role], named_volumes) if mount.target == "/data"]
        assert len(data) == 1, f"{role} mounts /data once"
        # An anonymous volume (no source): one per container, so every replica has its own.
        assert data[0].kind == "volume" and not data[0].source, f"{role}: /data must be per replica, not {data[0]}"
    for role in ROLES:
        assert role_env(services, role)["INVENTORY_DATA_DIR"] == "/data"
    users: dict[str, list[str]] = {}
    for name, service in services.items():
        for mount in mounts(service, named_volumes):
            if mount.source:
                users.setdefault(mount.source, []).append(name)
    shared = {source: names for source, names in users.items() if len(names) > 1}
    assert not shared, f"volumes mounted by more than one service: {shared}"


@pytest.mark.parametrize("role", NODES)
def test_query_and_command_run_as_several_nodes_of_the_listener(services: dict[str, dict[str, Any]], role: str) -> None:
    service = services[role]
    replicas = (service.get("deploy") or {}).get("replicas", service.get("scale", 1))
    assert int(replicas) > 1
    assert "container_name" not in service, "replicas cannot share a container name"
    settings = load_settings(role_env(services, role))
    assert settings.node
    listener = urlsplit(settings.listener_url)
    assert listener.hostname == "listener"
    listener_command = parser().parse_args([str(word) for word in services["listener"]["command"]])
    assert listener.port == listener_command.port
    # The first snapshot and the accounts come from the listener.
    assert depends_on(service).get("listener") == "service_healthy"
    assert not load_settings(role_env(services, "listener")).node


def edge_config(compose: dict[str, Any]) -> str:
    """The proxy's nginx.conf, written in the compose file, as nginx reads it ($$ is one $)."""
    (mounted,) = compose["services"][EDGE]["configs"]
    assert mounted["target"] == "/etc/nginx/nginx.conf"
    return interpolate(str(compose["configs"][mounted["source"]]["content"]), {})


def test_the_edge_proxy_puts_each_services_replicas_behind_its_port(compose: dict[str, Any]) -> None:
    text = edge_config(compose)
    upstreams = dict(re.findall(r"upstream (\w+) \{([^}]*)\}", text))
    servers = dict(re.findall(r"server \{ listen (\d+); location / \{ proxy_pass http://(\w+); \} \}", text))
    for role, port in THROUGH_EDGE.items():
        assert servers[str(port)] == role
        # Docker's DNS gives every replica's address for the service name; re-resolved at run time.
        assert re.search(rf"server {role}:{PORTS[role]} resolve;", upstreams[role]), upstreams[role]
        assert "zone " in upstreams[role]
    assert "resolver 127.0.0.11" in text
    # Server-sent events pass through as they are written, and long-lived streams spread evenly.
    assert "proxy_buffering off;" in text and "least_conn;" in upstreams["query"]
    assert "$host" in text and "$proxy_add_x_forwarded_for" in text


@pytest.mark.parametrize("role", ROLES)
def test_roles_start_after_kafka_and_redis_are_healthy(services: dict[str, dict[str, Any]], role: str) -> None:
    conditions = depends_on(services[role])
    assert conditions.get("kafka") == "service_healthy"
    assert conditions.get("redis") == "service_healthy"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        words = healthcheck_words(service)
        assert words and words[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert not (service.get("healthcheck") or {}).get("disable"), f"{name} disables its healthcheck"
        for needed, condition in depends_on(service).items():
            if condition == "service_healthy":
                assert healthcheck_words(services[needed]), f"{name} waits for {needed}, which has no healthcheck"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/api/v1/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("role", ROLES)
def test_role_healthcheck_probes_the_health_endpoint_and_fails_when_it_fails(
    services: dict[str, dict[str, Any]], role: str, health_server: ThreadingHTTPServer
) -> None:
    words = healthcheck_words(services[role])
    # The image is python:3.11-slim: no curl or wget, so the probe is Python's urllib.
    assert words[:3] == ["CMD", "python", "-c"], words
    code = words[3]
    url = f"http://127.0.0.1:{PORTS[role]}/api/v1/health"
    assert url in code
    probe = code.replace(url, f"http://127.0.0.1:{health_server.server_address[1]}/api/v1/health")

    def run() -> int:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=20).returncode

    _Health.status = 200
    assert run() == 0
    _Health.status = 503
    try:
        assert run() != 0
    finally:
        _Health.status = 200


def test_kafka_is_one_kraft_node_with_single_replica_internal_topics(
    services: dict[str, dict[str, Any]], named_volumes: set[str]
) -> None:
    kafka = services["kafka"]
    env = resolved_environment(kafka, {})
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listening = kafka_listeners(env["KAFKA_LISTENERS"])
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    voter_host, _, voter_port = voter.rpartition(":")
    assert voter_host in ("kafka", kafka.get("hostname"))
    (controller,) = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
    assert listening[controller][1] == int(voter_port)
    protocols = dict(entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listening) <= set(protocols)
    # The image formats its storage with this id; a base64url UUID of 16 bytes.
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[name] == "1", name
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    # The application creates its topics with their partitions and retention.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    data = [mount for mount in mounts(kafka, named_volumes) if mount.target == env["KAFKA_LOG_DIRS"]]
    assert len(data) == 1 and data[0].kind == "volume", "the broker's log directory is a named volume"


def test_kafka_ui_shows_the_broker_the_roles_use(services: dict[str, dict[str, Any]]) -> None:
    ui = resolved_environment(services["kafka-ui"], {})
    assert ui["KAFKA_CLUSTERS_0_NAME"]
    assert ui["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == role_env(services, "command")["INVENTORY_KAFKA_BOOTSTRAP"]
    assert depends_on(services["kafka-ui"]).get("kafka") == "service_healthy"
    # The UI listens on 8080 inside its container.
    assert (PUBLISHED["kafka-ui"], 8080) in {(port.published, port.target) for port in ports(services["kafka-ui"])}


def test_no_secret_is_written_in_the_compose_file(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                # A required variable, without a default that would become everyone's secret (or an
                # optional one whose default is empty: the feature is off, like /metrics' token).
                required = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}", value)
                optional = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-\}", value)
                assert required or optional, f"{name}: {key}={value!r}"
    for role in ROLES:
        assert "INVENTORY_JWT_SECRET" in environment(services[role])
        with pytest.raises(MissingVariable):
            resolved_environment(services[role], {})
        with pytest.raises(MissingVariable):
            resolved_environment(services[role], {"INVENTORY_JWT_SECRET": ""})
    assert "INVENTORY_ADMIN_PASSWORD" not in COMPOSE.read_text()


def test_interpolation_helper_follows_compose_rules() -> None:
    assert interpolate("${A:-x}", {}) == "x"
    assert interpolate("${A:-x}", {"A": ""}) == "x"
    assert interpolate("${A-x}", {"A": ""}) == ""
    assert interpolate("${A}", {"A": "v"}) == "v"
    assert interpolate("$${A}", {"A": "v"}) == "${A}"
    with pytest.raises(MissingVariable):
        interpolate("${A:?needed}", {"A": ""})


# --- Dockerfile ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_stages() -> list[list[Instruction]]:
    """Instructions per stage (continuations joined, comments dropped); ARG defaults before the
    first FROM are substituted into FROM lines."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"

    global_args: dict[str, str] = {}
    stages: list[list[Instruction]] = []
    for text in logical:
        keyword, _, args = text.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.args.partition("=")
            global_args[name] = default
            continue
        if instruction.keyword == "FROM":
            args = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), instruction.args)
            instruction = Instruction("FROM", args)
            stages.append([])
        assert stages, f"{instruction.keyword} before FROM"
        stages[-1].append(instruction)
    return stages


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list) and all(isinstance(word, str) for word in value)
    return value


def pip_install_targets(run: str) -> list[list[str]] | None:
    """The positional arguments of each `pip install` in a shell command (None if there is none)."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and all(char in "&|;()<>" for char in token):
            commands.append([])
        else:
            commands[-1].append(token)
    found: list[list[str]] = []
    for words in commands:
        for index in range(len(words) - 1):
            if words[index].endswith("pip") and words[index + 1] == "install":
                found.append([word for word in words[index + 2 :] if not word.startswith("-")])
    return found or None


def test_image_is_based_on_python_311_slim() -> None:
    for stage in dockerfile_stages():
        image = stage[0].args.split()[0]
        assert image.startswith("python:3.11-slim"), image


def test_image_installs_the_package_with_pip_like_the_setup_script() -> None:
    # scripts/setup.sh (what the README runs) installs this directory with pip.
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    setup_targets = [
        targets for line in setup.splitlines() if "pip install" in line and (targets := pip_install_targets(line))
    ]
    assert any(target.startswith(".") for targets in setup_targets for found in targets for target in found)

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    readme = pyproject["project"]["readme"]
    stages = dockerfile_stages()
    installs: list[tuple[int, set[str]]] = []  # (stage, what that stage had copied by then)
    for number, stage in enumerate(stages):
        copied: set[str] = set()
        for instruction in stage:
            if instruction.keyword == "COPY" and not instruction.args.startswith("--from"):
                words = [word for word in shlex.split(instruction.args) if not word.startswith("--")]
                copied.update(word.rstrip("/") for word in words[:-1])
            if instruction.keyword == "RUN" and (found := pip_install_targets(instruction.args)):
                for positional in found:
                    assert positional == ["."], f"pip installs {positional}, not the project directory"
                # setuptools reads pyproject.toml and the readme it names.
                assert {"pyproject.toml", readme} <= copied, instruction.args
                installs.append((number, set(copied)))
    assert installs, "the Dockerfile never runs pip install"
    last_stage, last_copied = installs[-1]
    assert "app" in last_copied, "the last pip install runs after the application source is copied"
    if last_stage != len(stages) - 1:
        # Built in an earlier stage: the runtime stage takes the installed environment from there.
        assert any(
            instruction.keyword == "COPY" and instruction.args.startswith("--from=") for instruction in stages[-1]
        )


def test_image_runs_the_inventory_console_script() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "inventory" in pyproject["project"]["scripts"]
    final = dockerfile_stages()[-1]
    (entrypoint,) = [instruction for instruction in final if instruction.keyword == "ENTRYPOINT"]
    (cmd,) = [instruction for instruction in final if instruction.keyword == "CMD"]
    assert exec_form(entrypoint) == ["inventory"]
    args = parser().parse_args(exec_form(cmd))
    assert (args.command, args.role, args.host, args.port) == ("serve", "all", "0.0.0.0", None)


def test_image_runtime_user_data_volume_pages_and_healthcheck() -> None:
    final = dockerfile_stages()[-1]
    users = [instruction.args for instruction in final if instruction.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as an unprivileged user"

    env: dict[str, str] = {}
    for instruction in final:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.args):
                name, _, value = word.partition("=")
                env[name] = value
    assert env.get("INVENTORY_DATA_DIR") == "/data"
    volumes = [instruction.args for instruction in final if instruction.keyword == "VOLUME"]
    assert any("/data" in volume.replace('"', " ").split() for volume in volumes)

    copied: set[str] = set()
    for instruction in final:
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from"):
            copied.update(word.rstrip("/") for word in shlex.split(instruction.args)[:-1])
    assert {"templates", "static"} <= copied

    (healthcheck,) = [instruction.args for instruction in final if instruction.keyword == "HEALTHCHECK"]
    assert "/api/v1/health" in healthcheck
    # By default it probes the port `serve --role all` listens on.
    default_port = str(PORTS["all"])
    assert default_port in healthcheck or any(
        name in healthcheck and value == default_port for name, value in env.items()
    )


def test_build_context_keeps_local_state_and_secrets_out() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    if patterns[0] == "*":
        included = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
        assert included <= {"pyproject.toml", "README.md", "app", "templates", "static"}, included
        assert {"pyproject.toml", "app"} <= included
    else:
        assert {".env", ".venv", "data", ".git"} <= {pattern.strip("/") for pattern in patterns}
