"""Tables of a run: printed after each scenario, and written as report.md + report.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import metrics

#: The phases of a scenario whose CPU is measured: key prefix -> when.
PHASES = {"connecting": "while connecting", "b1": "during the 1 broadcast", "burst": "during the 10",
          "paced": "paced", "flood": "as fast as possible", "chan": "during a chan message (median)",
          "async": "one call each, 100 callers", "sync": "one call each, one thread", "batches": "calls of 100"}
#: Whose CPU: key suffix -> label (100 = one core).
ROLES = {"nodes": "node CPU% (summed)", "business": "business app CPU% (REST connect)", "redis": "redis CPU%",
         "senders": "sender CPU% (summed, helpers included)", "loadgens": "loadgen CPU% (summed)"}


def _cpu_rows(phase: str) -> dict[str, tuple[str, bool | None, str | None]]:
    return {f"{phase}_cpu_{role}": (f"{PHASES[phase]}: {label}", None, None) for role, label in ROLES.items()}


#: key -> (label, True if higher is better / False if lower is / None if neither, the phase it was measured in:
#: the load generators' CPU then is shown beside the figure).
METRICS: dict[str, tuple[str, bool | None, str | None]] = {
    "asked": ("clients asked to connect", None, None),
    "connected": ("clients connected", True, None),
    "failed": ("clients that never connected (4 attempts)", False, None),
    "held": ("connections held after settling", True, None),
    "online_in_store": ("clients online in the server's store (freeim: Redis; must equal held)", None, None),
    "connect_per_s": ("connect rate (connections/s, whole flow)", True, "connecting"),
    "connect_per_s_second_half": ("connect rate, second half of the clients (connections/s)", True, "connecting"),
    "rest_per_s": ("REST connect requests/s (freeim only; tokens fetched a chunk ahead)", True, "connecting"),
    "handshake_per_s": ("WebSocket handshakes/s (the node's share of connecting)", True, "connecting"),
    "rest_p50_ms": ("REST connect request p50 (ms; freeim only)", False, "connecting"),
    "rest_p99_ms": ("REST connect request p99 (ms; freeim only)", False, "connecting"),
    "handshake_p50_ms": ("WebSocket handshake p50 (ms)", False, "connecting"),
    "handshake_p99_ms": ("WebSocket handshake p99 (ms)", False, "connecting"),
    **_cpu_rows("connecting"),
    "rss_before_mb": ("server RSS before (MB, nodes summed)", False, None),
    "rss_after_mb": ("server RSS after (MB, nodes summed)", False, None),
    "rss_max_node_mb": ("largest node RSS after (MB)", False, None),
    "kb_per_conn": ("RSS per idle connection (KB)", False, None),
    "idle_cpu_nodes": ("node CPU% idle, holding all", False, None),
    "b1_time_to_all_ms": ("1 broadcast: time to all (ms)", False, "b1"),
    "b1_per_s": ("1 broadcast: deliveries/s", True, "b1"),
    "b1_lost": ("1 broadcast: lost", False, None),
    "loop_p99_ms": ("node loop: p99 lateness of a 10 ms task during 1 broadcast (ms; Python servers)", False, "b1"),
    **_cpu_rows("b1"),
    "b10_time_to_all_ms": ("10 back to back: time to all (ms)", False, "burst"),
    "b10_per_s": ("10 back to back: deliveries/s", True, "burst"),
    "b10_lost": ("10 back to back: lost", False, None),
    **_cpu_rows("burst"),
    "send_failed": ("sends that raised", False, None),
    "sent": ("paced: messages sent", None, None),
    "sent_per_s": ("paced: achieved send rate (msg/s)", True, "paced"),
    "delivered_pct": ("paced: delivered / sent (%)", True, None),
    "lat_p50_ms": ("paced: latency p50 (ms)", False, "paced"),
    "lat_p90_ms": ("paced: latency p90 (ms)", False, "paced"),
    "lat_p99_ms": ("paced: latency p99 (ms)", False, "paced"),
    "lat_max_ms": ("paced: latency max (ms)", False, "paced"),
    **_cpu_rows("paced"),
    "flood_sent": ("as fast as possible: messages sent", None, None),
    "flood_delivered_pct": ("as fast as possible: delivered / sent (%)", True, None),
    "flood_per_s": ("as fast as possible: delivered/s", True, "flood"),
    "flood_p99_ms": ("as fast as possible: latency p99 under the flood (ms)", False, "flood"),
    **_cpu_rows("flood"),
    "chan_time_to_all_ms": ("1 chan message: time to all members (ms, median)", False, "chan"),
    "chan_time_to_all_max_ms": ("1 chan message: time to all (ms, worst)", False, "chan"),
    "chan_per_s": ("1 chan message: deliveries/s (median)", True, "chan"),
    "chan_lost": ("chan: lost (all repeats)", False, None),
    **_cpu_rows("chan"),
    **{key: value for phase in ("async", "sync", "batches") for key, value in {
        f"{phase}_sends_per_s": (f"{PHASES[phase]}: messages sent/s (calls answered)", True, phase),
        f"{phase}_delivered_per_s": (f"{PHASES[phase]}: delivered/s", True, phase),
        f"{phase}_lost": (f"{PHASES[phase]}: lost", False, None),
        f"{phase}_failed": (f"{PHASES[phase]}: sends that raised", False, None),
        f"{phase}_sender_us": (f"{PHASES[phase]}: sender CPU per message (µs)", False, None),
        f"{phase}_round_trips": (f"{PHASES[phase]}: sender's Redis round trips per message (freeim only)", False,
                                 None),
        f"{phase}_redis_commands": (f"{PHASES[phase]}: Redis commands per message", False, None),
        **_cpu_rows(phase)}.items()},
}
#: The figures of the summary at the top of report.md: (scenario, key); the first broadcast size stands for all.
SUMMARY: list[tuple[str, str]] = [
    ("capacity", "held"), ("capacity", "kb_per_conn"), ("capacity", "connect_per_s"), ("capacity", "handshake_per_s"),
    ("broadcast", "b1_per_s"), ("broadcast", "b10_per_s"), ("broadcast", "b10_lost"),
    ("private", "lat_p99_ms"), ("private", "delivered_pct"), ("private", "flood_per_s"),
    ("private", "flood_delivered_pct"), ("chan", "chan_time_to_all_ms"), ("cluster", "held"),
    ("cluster", "kb_per_conn"), ("sends", "async_sends_per_s"), ("sends", "sync_sends_per_s"),
    ("sends", "batches_sends_per_s"),
]
#: The issue's targets for freeim: (scenario, key, ">=" or "<", threshold).
TARGETS: list[tuple[str, str, str, float]] = [
    ("capacity", "held", ">=", 19_000),
    ("capacity", "kb_per_conn", "<=", 20),
    ("capacity", "rest_per_s", ">=", 1_000),
    ("capacity", "handshake_per_s", ">=", 1_200),
    ("broadcast-5000", "b1_time_to_all_ms", "<=", 150),
    ("broadcast-5000", "b1_per_s", ">=", 33_000),
    ("broadcast-5000", "b10_per_s", ">=", 100_000),
    ("broadcast-5000", "b1_lost", "<=", 0),
    ("broadcast-5000", "b10_lost", "<=", 0),
    ("broadcast-5000", "loop_p99_ms", "<=", 20),
    ("private", "lat_p99_ms", "<", 20),
    ("private", "delivered_pct", ">=", 100),
    ("private", "flood_per_s", ">=", 15_000),
    ("cluster", "held", ">=", 50_000),
    ("sends", "async_sends_per_s", ">=", 15_000),
    ("sends", "sync_sends_per_s", ">=", 5_000),
    ("sends", "batches_sends_per_s", ">=", 50_000),
    ("sends", "async_round_trips", "<=", 1),
    ("sends", "sync_round_trips", "<=", 1),
    ("sends", "async_lost", "<=", 0),
    ("sends", "batches_lost", "<=", 0),
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
        return f"{value:,.2f}" if abs(value) < 1 else f"{value:,.1f}"  # 0.02 round trips per message
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def cell(figures: dict[str, Any], key: str) -> str:
    """A figure, with the load generators' CPU% while it was measured beside it (``lg 56%``)."""
    value = figures.get(key)
    phase = METRICS[key][2]
    loadgens = figures.get(f"{phase}_cpu_loadgens") if phase and value is not None else None
    return fmt(value) + (f" (lg {fmt(loadgens)}%)" if loadgens is not None else "")


def ratios(runs: dict[str, dict[str, Any]], key: str, peers: list[str]) -> list[str]:
    """freeim's advantage over each of ``peers`` on ``key`` (>1: freeim better)."""
    higher = METRICS[key][1]
    mine = runs.get("freeim", {}).get("metrics", {}).get(key)
    found = []
    for kind in peers:
        theirs = runs.get(kind, {}).get("metrics", {}).get(key)
        value = metrics.ratio(mine, theirs, higher) if higher is not None else None
        found.append("" if not value else f"{value:.2f}" if value < 1 else fmt(value))
    return found


def peers_of(kinds: list[str]) -> list[str]:
    """The targets freeim is compared with: all the others, none if freeim did not run."""
    return [kind for kind in kinds if kind != "freeim"] if "freeim" in kinds else []


def header(first: str, kinds: list[str], peers: list[str], extra: str = "") -> list[str]:
    columns = [first, *kinds, *(f"freeim vs {peer} (x)" for peer in peers), *([extra] if extra else [])]
    return [f"| {' | '.join(columns)} |", f"|{'---|' * len(columns)}"]


def scenario_table(name: str, runs: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows of one scenario: each metric for every target (with the load generators' CPU
    beside the figures measured in a phase), freeim's ratio to each peer, the issue's target."""
    kinds = list(runs)
    peers = peers_of(kinds)
    lines = header(name, kinds, peers, "target")
    keys = [k for k in METRICS if any(k in runs[kind].get("metrics", {}) for kind in kinds)]
    for key in keys:
        goal = target_of(name.split(" ")[0], key)
        goal_text = ""
        if goal is not None:
            ok = met(*goal, runs.get("freeim", {}).get("metrics", {}).get(key))
            goal_text = f"{goal[0]} {fmt(goal[1])}: {'met' if ok else '**not met**'}"
        values = [cell(runs[kind].get("metrics", {}), key) for kind in kinds]
        lines.append(f"| {METRICS[key][0]} | {' | '.join([*values, *ratios(runs, key, peers), goal_text])} |")
    for kind in kinds:
        if runs[kind].get("error"):
            lines.append(f"\n{kind} failed: `{runs[kind]['error']}`")
        if runs[kind].get("errors"):
            lines.append(f"\n{kind} errors: `{runs[kind]['errors']}`")
    return lines


def summary_table(scenarios: dict[str, dict[str, Any]]) -> list[str]:
    """The headline figures of every scenario run, every target side by side, freeim's ratio to each peer."""
    kinds = list(dict.fromkeys(kind for runs in scenarios.values() for kind in runs))
    peers = peers_of(kinds)
    rows = []
    for scenario, key in SUMMARY:
        name = next((n for n in scenarios if n.split("-")[0] == scenario), None)
        if name is None or not any(key in run.get("metrics", {}) for run in scenarios[name].values()):
            continue
        runs = scenarios[name]
        values = [cell(runs.get(kind, {}).get("metrics", {}), key) for kind in kinds]
        rows.append(f"| {name}: {METRICS[key][0]} | {' | '.join([*values, *ratios(runs, key, peers)])} |")
    return [*header("figure", kinds, peers), *rows] if rows else []


PEERS = {
    "channels": "plain Django Channels (`AsyncWebsocketConsumer` on daphne, `group_send` through channels_redis "
                "`{layer}` layer): clients open `ws://node/ws/<id>`, no token flow, as a Django developer would "
                "write it",
    "bare": "a bare `websockets` server per node (`bench/peers/bare_server.py`), fed by one Redis PUBLISH per "
            "message (private, chan or broadcast), written with `websockets`' `broadcast`: the Python ceiling",
    "socketio": "Socket.IO 4 on Node.js with `@socket.io/redis-adapter`, the business side publishing through "
                "`@socket.io/redis-emitter` (`bench/peers/socketio/`); its clients speak Engine.IO v4 over "
                "the load generator's WebSocket",
}


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    kinds = list(dict.fromkeys(k for runs in report["scenarios"].values() for k in runs))
    described = [f"* **{kind}**: {PEERS[kind].format(layer=report['layer'])}." for kind in kinds if kind in PEERS]
    skipped = [f"* **{kind}** skipped: {why}." for kind, why in report.get("skipped", {}).items()]
    lines = ["# freeim benchmark report", "",
             f"Command: `{report['command']}` ({report['mode']} sizes), {report['date']}.", "",
             "| machine | |", "|---|---|", *(f"| {k} | {v} |" for k, v in machine.items()), "",
             "Everything runs on this one machine: servers, a private redis-server, the load generators "
             "and the sender share its cores. freeim clients go through the real connect flow "
             "(`POST /im/connect/` on a business daphne process, then the node's `ws://.../ws?token=`). "
             "Its peers, each run in the same invocation:", "", *described, *skipped, "",
             "Ratios are freeim's advantage over each peer (>1: freeim better). `(lg N%)` beside a figure is "
             "the load generators' CPU while it was measured (100 = one core): near 100 per load process, "
             "the figure is the client's, not the server's.", "",
             "![latency and deliveries](plot.png)", "", "## Summary", "", *summary_table(report["scenarios"]), ""]
    for name, runs in report["scenarios"].items():
        load = "; ".join(f"{kind} {run.get('load', '')}" for kind, run in runs.items())
        lines += [f"## {name}", "", f"Load average before: {load}.", "", *scenario_table(name, runs), ""]
    return "\n".join(lines)


def write(report: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=1, default=str))
    (directory / "report.md").write_text(markdown(report))
