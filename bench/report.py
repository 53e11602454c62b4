"""Readable tables of a result (the JSON written by ``python -m bench run``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.versus import targets

Result = dict[str, Any]

FRESHNESS_HEADERS = (
    "offered/s", "sent/s", "202 p50", "202 p99", "GET p50", "GET p99", "SSE p50", "SSE p99", "send>SSE p50",
    "send>SSE p99", "unseen", "non-202", "generator CPU", "busiest",
)  # fmt: skip
FANOUT_HEADERS = (
    "subscribers", "connected", "connect s", "deliveries", "p50", "p99", "max", "missing", "generator CPU", "busiest",
)  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [title, "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def _ms(summary: Result, key: str) -> Any:
    return summary.get(key) if summary else None


def _busiest(server_cpu: Result) -> str:
    if not server_cpu:
        return "-"
    name, usage = max(server_cpu.items(), key=lambda kv: kv[1]["cpu_percent"])
    return f"{name} {usage['cpu_percent']:.0f}%"


def _skipped(section: Result) -> str | None:
    if not section:
        return "  not run"
    if "skipped" in section:
        return f"  skipped: {section['skipped']}"
    if "error" in section:
        return f"  failed: {section['error']}"
    return None


def render(result: Result) -> str:
    machine = result.get("machine", {})
    run = result.get("run", {})
    sections = result.get("sections", {})
    out = [
        f"Inventory benchmark: mode {run.get('mode')}, size {run.get('size')}, {run.get('started_at')}, "
        f"{run.get('duration_seconds')} s",
        f"Machine: {machine.get('cpu_model')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB RAM, "
        f"Python {machine.get('python')}, kernel {machine.get('kernel')}",
        "",
    ]

    versus = sections.get("versus")
    if versus is not None:
        out.append(
            _skipped(versus)
            or table(
                f"0. Side by side with the Go prototypes ({versus.get('client')}; one URL per row; ms)",
                ["workload", "/s", "p50", "p99", "non-2xx", "Go /s", "Go p99", "target", "client CPU", "busiest"],
                [
                    [
                        row["name"],
                        row["per_s"],
                        _ms(row["latency"], "p50_ms"),
                        _ms(row["latency"], "p99_ms"),
                        sum(row["other_statuses"].values()),
                        row["go"]["per_s"] or "-",
                        row["go"]["p99_ms"] or "-",
                        "met" if row["target_met"] else "MISSED",
                        f"{row['client_cpu_percent']:.0f}%" if row.get("client_cpu_percent") is not None else "-",
                        _busiest(row.get("server_cpu", {})),
                    ]
                    for row in versus.get("rows", [])
                ],
            )
        )
        out.append("")

    memory = sections.get("memory")
    if memory is not None and "rss_mib" in memory:
        out.append(
            table(
                f"Memory with {memory['items']:,} items, each read once (VmRSS MiB; a query worker alone)",
                list(memory["rss_mib"]),
                [list(memory["rss_mib"].values())],
            )
        )
        out.append("")

    commands = sections.get("commands", {})
    out.append(
        _skipped(commands)
        or table(
            "1. Commands, closed loop (202 latency in ms; busiest process of the stack, 100% = one core)",
            ["clients", "202/s", "p50", "p99", "p99.9", "max", "non-202", "drain s", "generator CPU", "busiest"],
            [
                [
                    level["clients"],
                    level["accepted_per_s"],
                    _ms(level["latency_202"], "p50_ms"),
                    _ms(level["latency_202"], "p99_ms"),
                    _ms(level["latency_202"], "p999_ms"),
                    _ms(level["latency_202"], "max_ms"),
                    sum(level["other_statuses"].values()) + level["connection_errors"],
                    level.get("listener_drain_seconds"),
                    f"{level['generator']['cpu_percent']:.0f}%",
                    _busiest(level.get("server_cpu", {})),
                ]
                for level in commands.get("levels", [])
            ],
        )
    )
    out.append("")

    catch_up = sections.get("catch_up", {})
    out.append(
        _skipped(catch_up)
        or table(
            "2. Listener catch-up",
            ["events", "produced/s", "start->first s", "apply s", "events/s", "incl. start /s", "busiest"],
            [
                [
                    catch_up["events"],
                    catch_up["produced_per_s"],
                    catch_up["start_to_first_apply_seconds"],
                    catch_up["apply_seconds"],
                    catch_up["events_per_s"],
                    catch_up["events_per_s_including_start"],
                    _busiest(catch_up.get("server_cpu", {})),
                ]
            ],
        )
    )
    out.append("")

    store_day = sections.get("store_day", {})
    if store_day:
        latency = store_day.get("latency_202", {})
        out.append(
            _skipped(store_day)
            or table(
                "A store's day (ship, receive short, transfer, count, reserve to expire / commit / cancel, adjust)",
                ["rounds", "commands/s", "p50 ms", "p99 ms", "drain s", "answers"],
                [
                    [
                        store_day["rounds"],
                        store_day["commands_per_s"],
                        latency.get("p50_ms"),
                        latency.get("p99_ms"),
                        store_day["listener_drain_seconds"],
                        ", ".join(f"{k}: {v}" for k, v in store_day["answers"].items() if not k.endswith(" 202"))
                        or "all 202",
                    ]
                ],
            )
        )
        out.append("")

    freshness = sections.get("freshness", {})
    out.append(
        _skipped(freshness)
        or table(
            "3. Freshness, open loop (ms from the 202, and from the request for send>SSE; 202 latency from the "
            "scheduled send)",
            FRESHNESS_HEADERS,
            [
                [
                    load["offered_per_s"],
                    load["sent_per_s"],
                    _ms(load["latency_202"], "p50_ms"),
                    _ms(load["latency_202"], "p99_ms"),
                    _ms(load["freshness_get"], "p50_ms"),
                    _ms(load["freshness_get"], "p99_ms"),
                    _ms(load["freshness_sse"], "p50_ms"),
                    _ms(load["freshness_sse"], "p99_ms"),
                    _ms(load.get("visible_sse_from_send", {}), "p50_ms"),
                    _ms(load.get("visible_sse_from_send", {}), "p99_ms"),
                    load["sse_unseen"] + load["get_unseen"],
                    sum(load["other_statuses"].values()) + load["connection_errors"],
                    f"{load['generator']['cpu_percent']:.0f}%",
                    _busiest(load.get("server_cpu", {})),
                ]
                for load in freshness.get("loads", [])
            ],
        )
    )
    out.append("")

    reads = sections.get("reads", {})
    out.append(
        _skipped(reads)
        or table(
            f"4. Reads, {reads.get('clients')} clients (ms)",
            ["cache", "endpoint", "req/s", "p50", "p99", "p99.9", "non-200", "generator CPU", "busiest"],
            [
                [
                    case["cache"],
                    case["endpoint"] + (" (1 pass)" if case.get("pass") else ""),
                    case["requests_per_s"],
                    _ms(case["latency"], "p50_ms"),
                    _ms(case["latency"], "p99_ms"),
                    _ms(case["latency"], "p999_ms"),
                    sum(case["other_statuses"].values()),
                    f"{case['generator']['cpu_percent']:.0f}%",
                    _busiest(case.get("server_cpu", {})),
                ]
                for case in reads.get("cases", [])
            ],
        )
    )
    for name, note in reads.get("notes", {}).items():
        out.append(f"  {name}: {note}")
    out.append("")

    fanout = sections.get("fanout", {})
    out.append(
        _skipped(fanout)
        or table(
            "5. SSE fan-out (ms from the 202 to each subscriber's item event)",
            FANOUT_HEADERS,
            [
                [
                    group["subscribers"],
                    group["connected"],
                    group["connect_seconds"],
                    group["deliveries"],
                    _ms(group["latency"], "p50_ms"),
                    _ms(group["latency"], "p99_ms"),
                    _ms(group["latency"], "max_ms"),
                    group["missing"],
                    " ".join(f"{g['cpu_percent']:.0f}%" for g in group["generator"]),
                    _busiest(group.get("server_cpu", {})),
                ]
                for group in fanout.get("groups", [])
            ],
        )
    )
    out.append("")

    resources = sections.get("resources", {})
    if not _skipped(resources):
        rows = [
            [name, info["peak_rss_mib"], info["cpu_seconds"]] for name, info in resources.get("processes", {}).items()
        ]
        generator = resources.get("load_generator", {})
        rows.append(["load generator", generator.get("peak_rss_mib"), generator.get("cpu_seconds")])
        out.append(table("6. Processes (whole run)", ["process", "peak RSS MiB", "CPU s"], rows))
    else:
        out.append(_skipped(resources) or "")
    out.append("")

    disturbed = _disturbed(sections)
    if disturbed:
        out.append(
            "Disturbed: other processes on the machine used more than a quarter of a core during: "
            + ", ".join(disturbed)
        )
        out.append("")

    correctness = sections.get("correctness", {})
    out.append(
        _skipped(correctness)
        or table(
            "7. Correctness",
            [
                "oversold",
                "lost",
                "applied twice",
                "unbalanced",
                "accepted",
                "outcomes",
                "topic messages",
                "unaccounted",
                "ok",
            ],
            [
                [
                    correctness["oversold"],
                    correctness["lost"],
                    correctness["applied_twice"],
                    correctness.get("unbalanced", "-"),
                    correctness["accepted_checked"],
                    correctness["outcomes"],
                    correctness["command_topic_messages"],
                    correctness["unaccounted_messages"],
                    "yes" if correctness["ok"] else "NO",
                ]
            ],
        )
    )
    found = targets(sections)
    if found:
        out.append("")
        out.append(
            table(
                "Targets",
                ["target", "figure", "met"],
                [[t["target"], t["figure"], "yes" if t["met"] else "NO"] for t in found],
            )
        )
    return "\n".join(out)


def _disturbed(sections: Result) -> list[str]:
    names: list[str] = []
    labels = {"levels": "clients", "loads": "offered_per_s", "groups": "subscribers", "cases": "endpoint"}
    for name, section in sections.items():
        if not isinstance(section, dict):
            continue
        if section.get("disturbed"):
            names.append(name)
        for key, label in labels.items():
            for entry in section.get(key, []):
                if entry.get("disturbed"):
                    extra = f" {entry.get('cache')}" if key == "cases" else ""
                    names.append(f"{name}{extra} {entry.get(label)}")
    return names
