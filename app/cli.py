"""The ``inventory`` console command: start a role, manage users, operate the system."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from app.auth.roles import Role
from app.auth.users import UserError, UserStore
from app.bootstrap import ROLES, ServiceRole, build_container
from app.logs import configure_logging
from app.settings import PORTS, ConfigError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"inventory: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(role: ServiceRole, host: str, port: int | None) -> None:
    import uvicorn

    from app.http.application import asgi

    settings = _settings()
    configure_logging(settings.log_level, role)
    app = asgi(build_container(settings, role))
    config = uvicorn.Config(
        app,
        host=host,
        port=port or PORTS[role],
        log_level=settings.log_level.lower(),
        access_log=False,
        # Open event streams must not hold a stop hostage.
        timeout_graceful_shutdown=3,
        log_config=None,
    )
    print(f"inventory {role} serving on http://{host}:{port or PORTS[role]}", file=sys.stderr, flush=True)
    uvicorn.Server(config).run()


async def _users(args: argparse.Namespace) -> int:
    settings = _settings()
    store = UserStore(settings.users_db)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await store.open()
    try:
        if args.users_command == "add":
            password = args.password or _ask_password()
            await store.add(args.name.lower(), Role(args.role), password)
            print(f"added {args.name.lower()} ({args.role})")
        elif args.users_command == "passwd":
            await store.set_password(args.name.lower(), args.password or _ask_password())
            print(f"password changed for {args.name.lower()}")
        elif args.users_command == "role":
            await store.set_role(args.name.lower(), Role(args.role))
            print(f"{args.name.lower()} is now {args.role}")
        elif args.users_command == "remove":
            await store.remove(args.name.lower())
            print(f"removed {args.name.lower()}")
        else:
            for user in await store.list():
                print(f"{user.username}\t{user.role.value}\t{user.created_at}")
    except UserError as exc:
        print(f"inventory: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


def _ask_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        print("inventory: the passwords differ", file=sys.stderr)
        raise SystemExit(1)
    return first


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="inventory", description="Retail inventory on CQRS and events.")
    commands = top.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="start a role (all = everything in one process)")
    serve_cmd.add_argument("--role", choices=ROLES, default="all")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument(
        "--port", type=int, default=None, help="default: all 8000, command 8080, query 8081, listener 8082"
    )

    users = commands.add_parser("users", help="manage users")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    add = user_commands.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], required=True)
    add.add_argument("--password", help="omit to be asked (or read one line from stdin)")
    passwd = user_commands.add_parser("passwd", help="change a password")
    passwd.add_argument("name")
    passwd.add_argument("--password")
    role = user_commands.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("--role", choices=[r.value for r in Role], required=True)
    remove = user_commands.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    user_commands.add_parser("list", help="list users")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":
        serve(args.role, args.host, args.port)
        return 0
    if args.command == "users":
        return asyncio.run(_users(args))
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
