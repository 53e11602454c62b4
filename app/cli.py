"""The ``inventory`` console command: start a role, manage users, operate the system."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from app.auth.roles import Role
from app.auth.users import UserError, UserStore
from app.bootstrap import ROLES, ServiceRole, build_container, build_event_log
from app.eventlog.base import EventLog, LogUnavailable
from app.filemodes import private_umask, secure_data_dir
from app.logs import configure_logging
from app.settings import PORTS, ConfigError, Settings, load_settings

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"inventory: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _fail(message: str, code: int = 1) -> int:
    print(f"inventory: {message}", file=sys.stderr)
    return code


# Roles that may run as several processes behind one address (app/ops/workers.py).
WORKER_ROLES = ("query",)


def serve(role: ServiceRole, host: str, port: int | None, shared_port: int | None = None, workers: int = 1) -> None:
    if workers > 1:
        from app.ops.devstack import listening_socket
        from app.ops.workers import supervise

        settings = _settings()
        if settings.listener_url:
            # A node's replica is a file of its own: two workers would write one.
            raise SystemExit(_fail("--workers is not for a node (INVENTORY_LISTENER_URL): run more nodes", 2))
        configure_logging(settings.log_level, role)
        secure_data_dir(settings.data_dir)
        address = port or PORTS[role]
        print(f"inventory {role} serving on http://{host}:{address}, {workers} workers", file=sys.stderr, flush=True)

        def serve_one(_: int) -> None:
            # Each worker binds the address itself (SO_REUSEPORT): a queue of connections each.
            _serve_on(role, host, address, [listening_socket(host, address, shared=True)])

        raise SystemExit(supervise(workers, serve_one))
    _serve_on(role, host, port or PORTS[role], None, shared_port)


def _serve_on(
    role: ServiceRole, host: str, port: int, sockets: list[socket.socket] | None, shared_port: int | None = None
) -> None:
    import uvicorn

    from app.application import asgi
    from app.http.limits import server_options

    settings = _settings()
    configure_logging(settings.log_level, role)
    secure_data_dir(settings.data_dir)
    app = asgi(build_container(settings, role))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # Open event streams must not hold a stop hostage.
        timeout_graceful_shutdown=3,
        log_config=None,
        # Request limits and timeouts while reading, and which proxies' X-Forwarded-For count.
        **server_options(settings),
    )
    if sockets is not None:
        uvicorn.Server(config).run(sockets=sockets)
        return
    print(f"inventory {role} serving on http://{host}:{port}", file=sys.stderr, flush=True)
    # --- scale-out: several processes behind one address (SO_REUSEPORT, docs/scaling.md). The
    # sockets are made here because uvicorn binds without SO_REUSEPORT; the own port stays
    # exclusive, so one node can still be reached directly.
    if shared_port is not None:
        from app.ops.devstack import listening_socket

        sockets = [listening_socket(host, port), listening_socket(host, shared_port, shared=True)]
        print(f"inventory {role} also serving on http://{host}:{shared_port} (shared)", file=sys.stderr, flush=True)
        uvicorn.Server(config).run(sockets=sockets)
        return
    uvicorn.Server(config).run()


async def _with_log(settings: Settings, work: Callable[[EventLog], Awaitable[T]]) -> T:
    event_log = build_event_log(settings, client_id="inventory-cli")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await event_log.start()
    try:
        return await work(event_log)
    finally:
        await event_log.stop()


# --- users ----------------------------------------------------------------------------


async def _users(args: argparse.Namespace) -> int:
    settings = _settings()
    store = UserStore(settings.users_db)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await store.open()
    try:
        name = getattr(args, "name", "").lower()
        if args.users_command == "add":
            password = args.password or _ask_password()
            user = await store.add(
                name,
                Role(args.role),
                password,
                locations=_codes(args.locations or ""),
                known_locations=settings.locations,
            )
            print(f"added {name} ({args.role}, {_where(user.locations)})")
        elif args.users_command == "set-locations":
            given = "" if args.codes.strip().lower() == "all" else args.codes
            limited = await store.set_locations(name, _codes(given), known_locations=settings.locations)
            print(f"{name} may act at {_where(limited)}")
        elif args.users_command == "passwd":
            await store.set_password(name, args.password or _ask_password())
            print(f"password changed for {name}")
        elif args.users_command == "role":
            await store.set_role(name, Role(args.role))
            print(f"{name} is now {args.role}")
        elif args.users_command in ("disable", "enable"):
            await store.set_disabled(name, args.users_command == "disable")
            print(f"{name} is {args.users_command}d")
        elif args.users_command == "remove":
            await store.remove(name)
            print(f"removed {name}")
        else:
            for user in await store.list():
                # A column for what is not the usual only: scripts reading name, role, created go on.
                state = "\tdisabled" if user.disabled else ""
                only = f"\tlocations={','.join(user.locations)}" if user.locations else ""
                print(f"{user.username}\t{user.role.value}\t{user.created_at}{state}{only}")
    except UserError as exc:
        return _fail(str(exc))
    finally:
        await store.close()
    return 0


def _codes(text: str) -> list[str]:
    return [code for code in text.replace(",", " ").split() if code]


def _where(locations: Sequence[str]) -> str:
    return ",".join(locations) or "all locations"


def _ask_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit(_fail("the passwords differ"))
    return first


# --- commands -------------------------------------------------------------------------------


async def _submit(args: argparse.Namespace) -> int:
    """One command of the catalogue from the console, through the same CommandService and typed
    result as the API and the forms."""
    from app.commands.errors import CommandRefused
    from app.commands.service import Accepted, AnsweredBefore, CommandApplied, Submission
    from app.domain.catalogue import BY_NAME, FieldError, InvalidCommand, check_item_id

    settings = _settings()
    spec = BY_NAME[args.name]
    form = dict(pair.split("=", 1) for pair in args.fields)
    item = form.pop("item", "")
    container = build_container(settings, "command")
    await container.start()
    try:
        assert container.commands is not None
        if not spec.creates_item and not item:
            raise InvalidCommand([FieldError("item", "is required for this command")])
        item_id = str(uuid.uuid4()) if spec.creates_item else check_item_id(item)
        command = spec.check_form(form, item_id=item_id, places=container.commands.places)
        result = await container.commands.submit(
            Submission(
                command=command, actor=args.actor, request_id=uuid.uuid4().hex, request_hash="", wait_seconds=args.wait
            )
        )
    except InvalidCommand as exc:
        return _fail("invalid: " + "; ".join(f"{e.field}: {e.message}" for e in exc.errors), 2)
    except CommandRefused as exc:
        return _fail(f"refused ({exc.reason}): {exc.message}")
    except LogUnavailable:
        return _fail("the event log is unavailable; nothing was accepted, retry later")
    finally:
        await container.stop()
    assert not isinstance(result, AnsweredBefore)  # no key: never a retry
    record = f" ({result.record[0]} {result.record[1]})" if result.record else ""
    if isinstance(result, Accepted):
        print(f"accepted {result.command_id} for item {result.item_id}{record}: pending")
        return 0
    if isinstance(result, CommandApplied):
        print(f"applied {result.command_id} to item {result.item_id}{record}: version {result.version}")
        return 0
    print(f"rejected {result.command_id} ({result.reason}): {result.message}")
    return 3


# --- topics, dead letters, rebuild, demo ---------------------------------------------------


async def _topics(args: argparse.Namespace) -> int:
    from app.eventlog.topics import TOPICS

    settings = _settings()

    async def work(event_log: EventLog) -> int:
        if args.topics_command == "create":
            await event_log.ensure_topics(TOPICS)
            print("topics ready: " + ", ".join(spec.name for spec in TOPICS))
            return 0
        ends = await event_log.end_offsets([spec.name for spec in TOPICS])
        for spec in TOPICS:
            partitions = sorted((p, end) for (topic, p), end in ends.items() if topic == spec.name)
            retention = "forever" if spec.retention_ms is None else f"{spec.retention_ms // 3_600_000} h"
            offsets = " ".join(f"[{p}]={end}" for p, end in partitions) or "(missing)"
            print(f"{spec.name}\tpartitions={len(partitions)}\tretention={retention}\tend offsets {offsets}")
        return 0

    try:
        return await _with_log(settings, work)
    except LogUnavailable as exc:
        return _fail(f"the event log is unavailable: {exc}")


async def _dlq(args: argparse.Namespace) -> int:
    from app.commands.deadletters import DeadLetterNotFound, DeadLetterReplayer
    from app.reader import InventoryReader, ReadModelUnavailable

    settings = _settings()
    reader = InventoryReader(settings.inventory_db, connections=1)

    async def work(event_log: EventLog) -> int:
        replayer = DeadLetterReplayer(reader, event_log)
        if args.dlq_command == "list":
            letters = await replayer.list(limit=args.limit)
            for letter in letters:
                state = f"replayed {letter['replayed_at']}" if letter["replayed_at"] else "not replayed"
                source = f"{letter['topic']}[{letter['partition']}]@{letter['offset']}"
                print(f"{letter['id']}\t{letter['created_at']}\t{source}\t{state}\t{letter['error']}")
            if not letters:
                print("no dead letters")
            return 0
        ids = list(args.ids)
        if args.all:
            ids += [letter["id"] for letter in await replayer.list(limit=10_000) if not letter["replayed_at"]]
        for letter_id in ids:
            try:
                replayed = await replayer.replay(letter_id, actor="cli")
            except DeadLetterNotFound:
                return _fail(f"no dead letter {letter_id}")
            print(f"replayed dead letter {replayed.dead_letter_id} to {replayed.topic}")
        return 0

    try:
        return await _with_log(settings, work)
    except (ReadModelUnavailable, LogUnavailable) as exc:
        return _fail(str(exc))
    finally:
        await reader.close()


async def _rebuild(args: argparse.Namespace) -> int:
    from app.listener.rebuild import rebuild

    settings = _settings()
    report = await _with_log(
        settings,
        lambda log: rebuild(log, settings.data_dir, apply=args.apply, low_stock_threshold=settings.low_stock_threshold),
    )
    print(f"replayed {report.events} events into {report.path if not report.applied else settings.inventory_db}")
    if report.equal:
        print("the rebuilt state equals the current state")
    else:
        print(f"the rebuilt state differs from the current state ({len(report.differences)} shown):")
        for line in report.differences:
            print(f"  {line}")
    if report.applied:
        print("applied: the previous database was kept next to it; start the listener to refresh the cache")
    return 0 if report.equal or report.applied else 3


async def _demo(args: argparse.Namespace) -> int:
    from app.ops.demo import load_demo

    settings = _settings()
    if len(settings.locations) < 2:
        print(
            "inventory: demo data needs stores: set INVENTORY_LOCATIONS, e.g. MAIN,S001,S002,S003,S004,S005",
            file=sys.stderr,
        )
    plan = await _with_log(settings, lambda log: load_demo(log, settings.locations, items=args.items))
    print(
        f"published {len(plan.events)} commands: {plan.items} items at {plan.locations[0]}, "
        f"delivered to {', '.join(plan.locations[1:]) or 'no stores'}; the listener applies them"
    )
    return 0


def _dev(args: argparse.Namespace) -> int:
    from app.ops.devstack import DevStack

    base = args.port_base
    stack = DevStack(
        data_dir=Path(args.data_dir).resolve(),
        kafka_port=args.kafka_port,
        redis_port=args.redis_port,
        ports={"command": base, "query": base + 1, "listener": base + 2},
        query_nodes=args.query_nodes,
        command_nodes=args.command_nodes,
    )
    try:
        stack.start()
        password = stack.ensure_admin()
        rows = [*stack.addresses(), ("Kafka", f"127.0.0.1:{stack.kafka_port}"), ("data and logs", str(stack.data_dir))]
        width = max(20, *(len(what) + 1 for what, _ in rows))
        print(
            "\nThe inventory stack is up:\n"
            + "".join(f"  {what:<{width}}{where}\n" for what, where in rows)
            + (f"  user admin, password {password}\n" if password else "")
            + "Ctrl-C stops everything.\n",
            flush=True,
        )
        stack.run_until_signalled()
    except (RuntimeError, OSError) as exc:
        return _fail(str(exc))
    finally:
        print("stopping...", file=sys.stderr)
        stack.stop()
    return 0


# --- the parser -------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="inventory", description="Retail inventory on CQRS and events.")
    commands = top.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="start a role (all = everything in one process)")
    serve_cmd.add_argument("--role", choices=ROLES, default="all")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument(
        "--port", type=int, default=None, help="default: all 8000, command 8080, query 8081, listener 8082"
    )
    serve_cmd.add_argument(
        "--shared-port",
        type=int,
        default=None,
        help="also listen here, shared with other processes (SO_REUSEPORT): several nodes behind one address",
    )
    serve_cmd.add_argument(
        "--workers",
        type=int,
        default=1,
        help=f"processes serving the role's address (roles: {', '.join(WORKER_ROLES)}); default 1",
    )

    users = commands.add_parser("users", help="manage users")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add = user_commands.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], required=True)
    add.add_argument("--password", help="omit to be asked (or read one line from stdin)")
    add.add_argument("--locations", help="comma-separated location codes the user may act at (default: every location)")
    set_locations = user_commands.add_parser(
        "set-locations", help="limit a user to some locations, or 'all' (its tokens end)"
    )
    set_locations.add_argument("name")
    set_locations.add_argument("codes", help="comma-separated location codes, or 'all'")
    passwd = user_commands.add_parser("passwd", help="change a password")
    passwd.add_argument("name")
    passwd.add_argument("--password")
    role = user_commands.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("--role", choices=[r.value for r in Role], required=True)
    disable = user_commands.add_parser("disable", help="refuse a user's logins and end its tokens")
    disable.add_argument("name")
    enable = user_commands.add_parser("enable", help="let a disabled user log in again")
    enable.add_argument("name")
    remove = user_commands.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    user_commands.add_parser("list", help="list users")

    from app.domain.catalogue import PUBLIC_COMMANDS

    submit = commands.add_parser("submit", help="send one command, as the API and the forms do")
    submit.add_argument("name", choices=sorted(spec.name for spec in PUBLIC_COMMANDS), help="the command")
    submit.add_argument(
        "fields", nargs="*", metavar="FIELD=VALUE", type=_field,
        help="the body's fields, and item=ID for every command but create: item=... quantity=2 location=S001",
    )  # fmt: skip
    submit.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the outcome (0: do not wait)")
    submit.add_argument("--as", dest="actor", default="cli", help="who the history names (default: cli)")

    topics = commands.add_parser("topics", help="create or describe the topics")
    topics.add_argument("topics_command", choices=["create", "describe"])

    dlq = commands.add_parser("dlq", help="dead letters: list or replay")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="list dead letters, newest first")
    dlq_list.add_argument("--limit", type=int, default=50)
    dlq_replay = dlq_commands.add_parser("replay", help="publish dead letters to their topics again")
    dlq_replay.add_argument("ids", nargs="*", type=int)
    dlq_replay.add_argument("--all", action="store_true", help="every dead letter not replayed yet")

    rebuild = commands.add_parser("rebuild", help="rebuild the database by replaying the command topics")
    rebuild.add_argument("--apply", action="store_true", help="replace the database (stop the listener first)")

    demo = commands.add_parser("demo", help="publish realistic demo data (items stocked across the stores)")
    demo.add_argument("--items", type=int, default=2000)

    dev = commands.add_parser("dev", help="run Kafka, Redis and every role as separate processes here")
    dev.add_argument("--data-dir", default="data/dev")
    dev.add_argument("--kafka-port", type=int, default=9092)
    dev.add_argument("--redis-port", type=int, default=6379)
    dev.add_argument("--port-base", type=int, default=8080, help="command on it, query on +1, listener on +2")
    # --- scale-out: nodes with data of their own behind one address per service (docs/scaling.md).
    dev.add_argument(
        "--query-nodes", type=int, default=1, help="query processes behind the query address (above 1: nodes)"
    )
    dev.add_argument(
        "--command-nodes", type=int, default=1, help="command processes behind the command address (above 1: nodes)"
    )
    return top


def _field(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIELD=VALUE")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    private_umask()  # every file and directory this command creates is private (app/filemodes.py)
    if args.command == "serve":
        if args.workers < 1 or (args.workers > 1 and args.role not in WORKER_ROLES):
            return _fail(f"--workers above 1 is for the roles {', '.join(WORKER_ROLES)} (a positive number)", 2)
        if args.workers > 1 and args.shared_port is not None:
            return _fail("--workers and --shared-port do not go together: the workers share --port already", 2)
        serve(args.role, args.host, args.port, args.shared_port, args.workers)
        return 0
    if args.command == "dev":
        return _dev(args)
    runners = {
        "users": _users,
        "submit": _submit,
        "topics": _topics,
        "dlq": _dlq,
        "rebuild": _rebuild,
        "demo": _demo,
    }
    return asyncio.run(runners[args.command](args))


if __name__ == "__main__":
    raise SystemExit(main())
