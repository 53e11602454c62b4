"""``python -m bench``: run the benchmark, or print the tables of a result file."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from bench import bulk, machine, nodes, report, soak
from bench.growth import GROWTH_SIZES, render, run_growth
from bench.harness import SECTIONS, Harness, log, size_description
from bench.sizes import SIZES
from bench.stack import REPO, USERS, EmbeddedStack, KafkaStack, Stack, StartedStack, target_stack

EXIT_OK, EXIT_INCORRECT, EXIT_FAILED = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description="Benchmark the inventory services.")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start a stack (or use a running one), measure, check, report")
    run.add_argument("--mode", choices=("embedded", "kafka"), required=True)
    run.add_argument("--size", choices=sorted(SIZES), default="small")
    run.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to measure (default all: {','.join(SECTIONS)})",
    )
    run.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    run.add_argument("--work-dir", type=Path, help="for the started stack (default: a new temporary directory)")
    run.add_argument("--keep", action="store_true", help="keep the work directory (data, logs) afterwards")
    run.add_argument(
        "--query-workers",
        type=int,
        default=1,
        help="kafka mode: processes of the query role (inventory serve --workers); default 1: on two cores "
        "the load generator takes one (two workers gave fewer reads with a longer tail, docs/performance.md)",
    )
    run.add_argument(
        "--client",
        choices=("hey", "python"),
        default="hey",
        help="HTTP load for the 'versus' section: hey (compiled, installed with go install; default) or python",
    )
    target = run.add_argument_group("a stack that runs already")
    target.add_argument(
        "--target",
        action="append",
        default=[],
        help="URL of every role, or command=URL,query=URL (repeatable); nothing is started then",
    )
    target.add_argument(
        "--user", action="append", default=[], help="NAME:PASSWORD of an existing manager (or admin) user"
    )
    target.add_argument(
        "--data-dir", type=Path, help="the stack's INVENTORY_DATA_DIR: creates the harness's users, enables checks"
    )
    target.add_argument("--redis-url", help="the stack's Redis (to flush it for the cold-cache reads)")
    target.add_argument("--kafka-bootstrap", help="the stack's broker (to count the messages in the topics)")
    target.add_argument("--topic-prefix", default="", help="the stack's INVENTORY_KAFKA_TOPIC_PREFIX")

    growth = commands.add_parser(
        "growth", help="a small chain and a large one, one after the other: what grows with the number of stores"
    )
    growth.add_argument("--mode", choices=("embedded",), default="embedded")
    growth.add_argument("--size", choices=sorted(GROWTH_SIZES), default="small")
    growth.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    growth.add_argument("--work-dir", type=Path, help="for the started stacks (default: a new temporary directory)")
    growth.add_argument("--keep", action="store_true", help="keep the work directory (data, logs) afterwards")
    growth.add_argument(
        "--loadgen",
        choices=("auto", "python"),
        default="auto",
        help="auto: hey (installed with go install into a cache directory if missing), else the Python generator",
    )
    soak_cmd = commands.add_parser(
        "soak", help="steady load (110 writes/s, 100 reads/s, 50 streams) for long; fails if memory keeps growing"
    )
    soak_cmd.add_argument("--mode", choices=("embedded", "kafka"), default="embedded")
    soak_cmd.add_argument(
        "--soak-seconds", type=float, default=soak.DEFAULT_SECONDS, help="how long (default one hour)"
    )
    soak_cmd.add_argument("--sample-seconds", type=float, default=5.0, help="how often RSS is sampled")
    soak_cmd.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    soak_cmd.add_argument("--work-dir", type=Path, help="for the started stack (default: a new temporary directory)")
    soak_cmd.add_argument("--keep", action="store_true", help="keep the work directory (data, logs) afterwards")

    bulk_cmd = commands.add_parser(
        "bulk", help="CSV import (100,000 count rows), webhook deliveries and a 1,000,000-row CSV export"
    )
    bulk_cmd.add_argument("--mode", choices=("embedded", "kafka"), default="kafka")
    bulk_cmd.add_argument("--size", choices=sorted(bulk.BULK_SIZES), default="small")
    bulk_cmd.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    bulk_cmd.add_argument("--work-dir", type=Path, help="for the started stack (default: a new temporary directory)")
    bulk_cmd.add_argument("--keep", action="store_true", help="keep the work directory (data, logs) afterwards")

    nodes.add_parser(commands)

    show = commands.add_parser("show", help="print the tables of a result file")
    show.add_argument("result", type=Path)
    return top


def _raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _source() -> dict[str, Any]:
    """Which code was measured: the commit, and whether app/ had changes not committed yet."""
    changes = _git("status", "--porcelain", "--", "app")
    return {
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "app_uncommitted_changes": None if changes is None else len(changes.splitlines()),
    }


def _target(args: argparse.Namespace) -> Stack:
    passwords: dict[str, str] = {}
    for given in args.user:
        name, sep, password = given.partition(":")
        if not sep:
            raise SystemExit("--user takes NAME:PASSWORD")
        passwords[name] = password
    if not passwords:
        if args.data_dir is None:
            raise SystemExit("--target needs --user NAME:PASSWORD or --data-dir (to create the harness's users)")
        passwords = _create_users(args.data_dir)
    return target_stack(
        args.mode,
        args.target,
        passwords,
        args.data_dir,
        args.redis_url,
        args.kafka_bootstrap,
        args.topic_prefix,
    )


def _create_users(data_dir: Path) -> dict[str, str]:
    """The harness's users in a running stack's data directory (password reset if they exist)."""
    import secrets

    # A secret of our own keeps the console command from writing a development one into the directory.
    env = {
        "INVENTORY_DATA_DIR": str(data_dir),
        "INVENTORY_JWT_SECRET": "bench-" + secrets.token_urlsafe(40),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    passwords: dict[str, str] = {}
    for role, name in USERS.items():
        password = secrets.token_urlsafe(16)
        for action in (["add", name, "--role", role], ["passwd", name]):
            result = subprocess.run(
                [sys.executable, "-m", "app.cli", "users", *action, f"--password={password}"],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if result.returncode == 0:
                passwords[name] = password
                break
        else:
            raise SystemExit(f"could not create user {name}: {result.stderr.strip()}")
    return passwords


def run(args: argparse.Namespace) -> int:
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections in --only: {', '.join(sorted(unknown))} (known: {', '.join(SECTIONS)})")
    size = SIZES[args.size]
    open_files = _raise_open_files_limit()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_at_start = os.getloadavg()
    started = time.monotonic()

    work_dir: Path | None = None
    stack: Stack
    if args.target:
        stack = _target(args)
    else:
        work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="inventory-bench-"))
        work_dir.mkdir(parents=True, exist_ok=True)
        stack = EmbeddedStack(work_dir) if args.mode == "embedded" else KafkaStack(work_dir, args.query_workers)
    harness = Harness(stack, size, only, client=args.client)
    problem: str | None = None
    try:
        log(f"starting the {args.mode} stack" + (f" in {work_dir}" if work_dir else ""))
        stack.start()
        harness.run()
    except BaseException as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        log("stopping the stack")
        stack.stop()
        failed = problem is not None or harness.failed
        if work_dir is not None and isinstance(stack, StartedStack):
            if args.keep or failed:
                log(f"work directory kept: {work_dir}")
            else:
                shutil.rmtree(work_dir, ignore_errors=True)
        result = {
            "machine": machine.describe(args.mode),
            "run": {
                "mode": args.mode,
                "query_workers": args.query_workers if args.mode == "kafka" and not args.target else None,
                "client": args.client,
                "size": size.name,
                "stack": "target" if args.target else "started",
                "started_at": started_at,
                "duration_seconds": round(time.monotonic() - started, 1),
                **_source(),
                "command": " ".join(["python -m bench", *sys.argv[1:]]),
                "open_files_limit": open_files,
                "sizes": size_description(size),
                "interrupted": problem,
                # Other work on the machine disturbs every figure: see also each figure's host_cpu.
                "load_average_at_start": [round(v, 2) for v in load_at_start],
                "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            },
            "sections": harness.sections,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print()
        print(report.render(result))
        print(f"\nresult written to {args.out}")
    if any("error" in section for section in harness.sections.values()):
        return EXIT_FAILED
    if harness.sections.get("correctness", {}).get("ok") is False:
        return EXIT_INCORRECT
    return EXIT_OK


def growth(args: argparse.Namespace) -> int:
    size = GROWTH_SIZES[args.size]
    _raise_open_files_limit()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_at_start = os.getloadavg()
    started = time.monotonic()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="inventory-growth-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    problem: str | None = None
    measured: dict[str, Any] = {}
    try:
        measured = run_growth(size, work_dir, args.keep, install=args.loadgen == "auto")
    except BaseException as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if args.keep or problem is not None:
            log(f"work directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
        result = {
            "machine": machine.describe(args.mode),
            "run": {
                "kind": "growth",
                "mode": args.mode,
                "size": size.name,
                "started_at": started_at,
                "duration_seconds": round(time.monotonic() - started, 1),
                **_source(),
                "command": " ".join(["python -m bench", *sys.argv[1:]]),
                "interrupted": problem,
                "load_average_at_start": [round(v, 2) for v in load_at_start],
                "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            },
            "growth": measured,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        if measured:
            print()
            print(render(measured))
        print(f"\nresult written to {args.out}")
    return EXIT_OK if all(ok is not False for ok in measured["targets"].values()) else EXIT_INCORRECT


def run_soak(args: argparse.Namespace) -> int:
    _raise_open_files_limit()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="inventory-soak-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    stack: StartedStack = EmbeddedStack(work_dir) if args.mode == "embedded" else KafkaStack(work_dir)
    harness = Harness(stack, soak.soak_size(), set())
    try:
        log(f"starting the {args.mode} stack in {work_dir}")
        stack.start()
        harness._section("setup", harness.setup)
        if "error" not in harness.sections["setup"]:
            harness._section("soak", lambda: soak.soak(harness, stack, args.soak_seconds, args.sample_seconds))
    finally:
        log("stopping the stack")
        stack.stop()
        result = {
            "machine": machine.describe(args.mode),
            "run": {
                "mode": args.mode,
                "started_at": started_at,
                **_source(),
                "command": " ".join(["python -m bench", *sys.argv[1:]]),
            },
            "sections": harness.sections,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        if args.keep or harness.failed:
            log(f"work directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    section = harness.sections.get("soak", {})
    print()
    print(soak.render(section))
    print(f"\nresult written to {args.out}")
    if harness.failed or "error" in section:
        return EXIT_FAILED
    return EXIT_OK if section.get("ok") else EXIT_INCORRECT


def run_bulk(args: argparse.Namespace) -> int:
    size = bulk.BULK_SIZES[args.size]
    _raise_open_files_limit()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    load_at_start = os.getloadavg()
    started = time.monotonic()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="inventory-bulk-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    problem: str | None = None
    sections: dict[str, Any] = {}
    try:
        bulk.run_bulk(args.mode, size, work_dir, sections)
    except BaseException as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        failed = problem is not None or any("error" in section for section in sections.values())
        if args.keep or failed:
            log(f"work directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
        result = {
            "machine": machine.describe(args.mode),
            "run": {
                "kind": "bulk",
                "mode": args.mode,
                "size": size.name,
                "started_at": started_at,
                "duration_seconds": round(time.monotonic() - started, 1),
                **_source(),
                "command": " ".join(["python -m bench", *sys.argv[1:]]),
                "sizes": bulk.size_description(size),
                "interrupted": problem,
                "load_average_at_start": [round(v, 2) for v in load_at_start],
                "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            },
            "sections": sections,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print()
        print(bulk.render(sections))
        print(f"\nresult written to {args.out}")
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "soak":
        return run_soak(args)
    if args.command == "bulk":
        return run_bulk(args)
    if args.command == "nodes":
        _raise_open_files_limit()
        return nodes.run_nodes(args, _source())
    if args.command == "show":
        result = json.loads(args.result.read_text())
        if "growth" in result:
            print(render(result["growth"]))
            return EXIT_OK
        if result["run"].get("kind") == "bulk":
            print(bulk.render(result["sections"]))
            return EXIT_OK
        if result["run"].get("kind") == "nodes":
            print(nodes.render(result["sections"]))
            return EXIT_OK
        if "soak" in result["sections"]:
            print(soak.render(result["sections"]["soak"]))
            return EXIT_OK
        print(report.render(result))
        return EXIT_OK
    if args.command == "growth":
        return growth(args)
    return run(args)
