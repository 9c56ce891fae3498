"""Tables of a run: printed after each scenario, and written as report.md + report.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import metrics

#: key -> (label, True if higher is better / False if lower is / None if neither).
METRICS: dict[str, tuple[str, bool | None]] = {
    "asked": ("clients asked to connect", None),
    "connected": ("clients connected", True),
    "failed": ("clients that never connected (4 attempts)", False),
    "held": ("connections held after settling", True),
    "online_in_store": ("clients online in the server's store (freeim: Redis; must equal held)", None),
    "connect_per_s": ("connect rate (connections/s, whole flow)", True),
    "connect_per_s_second_half": ("connect rate, second half of the clients (connections/s)", True),
    "rest_per_s": ("REST connect requests/s (freeim only; tokens fetched a chunk ahead)", True),
    "handshake_per_s": ("WebSocket handshakes/s (the node's share of connecting)", True),
    "rest_p50_ms": ("REST connect request p50 (ms; freeim only)", False),
    "rest_p99_ms": ("REST connect request p99 (ms; freeim only)", False),
    "handshake_p50_ms": ("WebSocket handshake p50 (ms)", False),
    "handshake_p99_ms": ("WebSocket handshake p99 (ms)", False),
    "rss_before_mb": ("server RSS before (MB, nodes summed)", False),
    "rss_after_mb": ("server RSS after (MB, nodes summed)", False),
    "rss_max_node_mb": ("largest node RSS after (MB)", False),
    "kb_per_conn": ("RSS per idle connection (KB)", False),
    "connecting_cpu_nodes": ("node CPU% while connecting (100 = 1 core, summed)", None),
    "connecting_cpu_business": ("business app CPU% while connecting (REST connect)", None),
    "connecting_cpu_redis": ("redis CPU% while connecting", None),
    "connecting_cpu_loadgens": ("loadgen CPU% while connecting", None),
    "idle_cpu_nodes": ("node CPU% idle, holding all", False),
    "b1_time_to_all_ms": ("1 broadcast: time to all (ms)", False),
    "b1_per_s": ("1 broadcast: deliveries/s", True),
    "b1_lost": ("1 broadcast: lost", False),
    "b10_time_to_all_ms": ("10 back to back: time to all (ms)", False),
    "b10_per_s": ("10 back to back: deliveries/s", True),
    "b10_lost": ("10 back to back: lost", False),
    "loop_p99_ms": ("node loop: p99 lateness of a 10 ms task during 1 broadcast (ms)", False),
    "burst_cpu_nodes": ("node CPU% during the 10", None),
    "burst_cpu_redis": ("redis CPU% during the 10", None),
    "burst_cpu_senders": ("sender CPU% (summed) during the 10", None),
    "burst_cpu_loadgens": ("loadgen CPU% during the 10", None),
    "send_failed": ("sends that raised", False),
    "sent": ("paced: messages sent", None),
    "sent_per_s": ("paced: achieved send rate (msg/s)", True),
    "delivered_pct": ("paced: delivered / sent (%)", True),
    "lat_p50_ms": ("paced: latency p50 (ms)", False),
    "lat_p90_ms": ("paced: latency p90 (ms)", False),
    "lat_p99_ms": ("paced: latency p99 (ms)", False),
    "lat_max_ms": ("paced: latency max (ms)", False),
    "paced_cpu_nodes": ("paced: node CPU% (summed)", None),
    "paced_cpu_redis": ("paced: redis CPU%", None),
    "paced_cpu_senders": ("paced: sender CPU% (summed)", None),
    "paced_cpu_loadgens": ("paced: loadgen CPU%", None),
    "flood_sent": ("as fast as possible: messages sent", None),
    "flood_delivered_pct": ("as fast as possible: delivered / sent (%)", True),
    "flood_per_s": ("as fast as possible: delivered/s", True),
    "flood_p99_ms": ("as fast as possible: latency p99 under the flood (ms)", False),
    "flood_cpu_nodes": ("as fast as possible: node CPU% (summed)", None),
    "flood_cpu_redis": ("as fast as possible: redis CPU%", None),
    "flood_cpu_senders": ("as fast as possible: sender CPU% (summed)", None),
    "flood_cpu_loadgens": ("as fast as possible: loadgen CPU%", None),
    "chan_time_to_all_ms": ("1 chan message: time to all members (ms, median)", False),
    "chan_time_to_all_max_ms": ("1 chan message: time to all (ms, worst)", False),
    "chan_per_s": ("1 chan message: deliveries/s (median)", True),
    "chan_lost": ("chan: lost (all repeats)", False),
}
#: The issue's targets for freeim: (scenario, key, ">=" or "<", threshold).
TARGETS: list[tuple[str, str, str, float]] = [
    ("capacity", "held", ">=", 19_000),
    ("capacity", "kb_per_conn", "<=", 27),
    ("broadcast-5000", "b1_per_s", ">=", 25_000),
    ("broadcast-5000", "b10_per_s", ">=", 100_000),
    ("broadcast-5000", "b1_lost", "<=", 0),
    ("broadcast-5000", "b10_lost", "<=", 0),
    ("private", "lat_p99_ms", "<", 20),
    ("private", "delivered_pct", ">=", 100),
    ("private", "flood_per_s", ">=", 15_000),
    ("cluster", "held", ">=", 50_000),
]


def target_of(scenario: str, key: str) -> tuple[str, float] | None:
    return next(((op, value) for s, k, op, value in TARGETS if s == scenario and k == key), None)


def met(op: str, threshold: float, value: float | None) -> bool:
    if value is None:
        return False
    return {">=": value >= threshold, "<=": value <= threshold, "<": value < threshold}[op]


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def scenario_table(name: str, runs: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows of one scenario: each metric for every target, the ratio, the issue's target."""
    kinds = list(runs)
    lines = [f"| {name} | {' | '.join(kinds)} | freeim vs baseline (x, >1 = better) | target |",
             f"|---|{'---|' * len(kinds)}---|---|"]
    keys = [k for k in METRICS if any(k in runs[kind].get("metrics", {}) for kind in kinds)]
    for key in keys:
        label, higher = METRICS[key]
        values = [runs[kind].get("metrics", {}).get(key) for kind in kinds]
        ratio = None
        if higher is not None and "freeim" in runs and "channels" in runs:
            ratio = metrics.ratio(runs["freeim"].get("metrics", {}).get(key),
                                  runs["channels"].get("metrics", {}).get(key), higher)
        goal = target_of(name.split(" ")[0], key)
        goal_text = ""
        if goal is not None:
            ok = met(*goal, runs.get("freeim", {}).get("metrics", {}).get(key))
            goal_text = f"{goal[0]} {fmt(goal[1])}: {'met' if ok else '**not met**'}"
        lines.append(f"| {label} | {' | '.join(fmt(v) for v in values)} | {fmt(ratio) if ratio else ''} | "
                     f"{goal_text} |")
    for kind in kinds:
        if runs[kind].get("error"):
            lines.append(f"\n{kind} failed: `{runs[kind]['error']}`")
        if runs[kind].get("errors"):
            lines.append(f"\n{kind} errors: `{runs[kind]['errors']}`")
    return lines


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = ["# freeim benchmark report", "",
             f"Command: `{report['command']}` ({report['mode']} sizes), {report['date']}.", "",
             "| machine | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.items()), "",
             "Everything runs on this one machine: servers, a private redis-server, the load generators "
             "and the sender share its cores. freeim clients go through the real connect flow "
             "(`POST /im/connect/` on a business daphne process, then the node's `ws://.../ws?token=`); "
             "the baseline (plain Channels, `AsyncWebsocketConsumer`, channels_redis "
             f"`{report['layer']}` layer) has no token flow: clients open `ws://node/ws/<id>` directly, as a "
             "Django developer would write it. Ratios are freeim's advantage (>1: freeim better).", "",
             "![latency and deliveries](plot.png)", ""]
    for name, runs in report["scenarios"].items():
        load = "; ".join(f"{kind} {run.get('load', '')}" for kind, run in runs.items())
        lines += [f"## {name}", "", f"Load average before: {load}.", "", *scenario_table(name, runs), ""]
    return "\n".join(lines)


def write(report: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (directory / "report.md").write_text(markdown(report))
