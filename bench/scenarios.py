"""The scenarios of issue 5, each run against one target (freeim or a peer: ``bench.targets.KINDS``).

Every scenario starts fresh servers on a fresh private redis-server
(:func:`session`) and stops everything it started when it ends, even on error or
Ctrl-C. Each returns ``{"metrics": {...}, "plot": {...}}``; the keys are
described in :mod:`bench.report`.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench import loopprobe, metrics, targets
from bench.proc import CpuMeter, rss_kb
from bench.workers import Loadgens, Senders

SETTLE = 5.0  # seconds between the last connect and the "after" RSS (the reference's 5 s)
WARM_UP = 20  # connections opened and closed before "RSS before"
CHAN = "bench"
Result = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is; :data:`FULL` is the issue's, :data:`QUICK` runs in minutes."""

    capacity: int = 19_500
    broadcast: tuple[int, ...] = (5_000, 15_000)
    private_clients: int = 3_000
    private_rate: int = 2_000
    private_seconds: float = 30
    flood: int = 60_000
    senders: int = 2  # sender processes sharing the private scenario's rate and flood
    chan_members: int = 5_000
    cluster: int = 50_000
    sends_clients: int = 1_000
    sends: int = 20_000  # one call each, async (100 callers) and as batches x 5
    sends_sync: int = 10_000  # one call each from one thread


FULL = Sizes()
QUICK = Sizes(capacity=1_500, broadcast=(1_000, 2_000), private_clients=1_500, private_seconds=5, flood=5_000,
              chan_members=1_500, cluster=3_000, sends_clients=500, sends=5_000, sends_sync=2_000)


@dataclass
class Session:
    """A running target with its load processes, sender and clients."""

    target: targets.Target
    loadgens: Loadgens
    senders: Senders | None = None
    ids: list[int] = field(default_factory=list)

    def connect(self, ids: list[int], chans: list[str] | None = None) -> Result:
        """Connect ``ids``; what :meth:`Loadgens.open` answers, with every process's CPU% meanwhile (``cpu``)."""
        self.ids = ids
        meter = self.cpu()
        opened = self.loadgens.open(self.target.client_target(chans), ids)
        return {**opened, "cpu": meter.percent()}

    def start_senders(self, count: int = 1) -> Senders:
        self.senders = Senders(self.target.sender_target(), count)
        return self.senders

    def cpu(self) -> CpuMeter:
        pids = self.target.pids()
        pids.update({f"loadgen{i}": pid for i, pid in enumerate(self.loadgens.pids)})
        if self.senders:
            pids.update({f"sender{i}": pid for i, pid in enumerate(self.senders.pids)})
            pids.update({f"sender{i}helper{j}": pid for i, helpers in enumerate(self.senders.helpers)
                         for j, pid in enumerate(helpers)})
        return CpuMeter(pids)

    def held(self) -> int:
        return self.loadgens.stats()["open"]

    def warm_up(self) -> None:
        """Open and close a few connections so the code paths are loaded before "RSS before"."""
        self.loadgens.open(self.target.client_target(), list(range(10_000_001, 10_000_001 + WARM_UP)))
        self.loadgens.close()
        time.sleep(1)


@contextlib.contextmanager
def session(kind: str, nodes: int, clients: int, layer: str) -> Iterator[Session]:
    """Fresh servers and load processes; everything stopped at the end (last started, first stopped)."""
    target = targets.make(kind, nodes, layer)
    failed = False
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: failed or target.remove_logs())  # callbacks run last first: this one at the end
        stack.callback(target.stop)
        try:
            target.start()
            loadgens = Loadgens(clients)
            stack.callback(loadgens.stop)
            running = Session(target, loadgens)
            stack.callback(lambda: running.senders and running.senders.stop())
            yield running
        except BaseException:
            failed = True
            print(targets.log_tails(target), f"\n(logs kept in {target.logs})")
            raise


def _connected(opened: Result, asked: int) -> dict[str, Any]:
    """How the connects went: counts, rate overall and over the second half, each step's rate and p50/p99,
    CPU meanwhile."""
    times = opened["opened"]
    half = times[len(times) // 2:]
    figures = {"connected": len(times), "asked": asked, "failed": opened["failed"],
               "connect_per_s": metrics.rate(times, opened["started"]),
               "connect_per_s_second_half": metrics.rate(half[1:], half[0]) if len(half) > 1 else 0.0}
    for step in ("rest", "handshake"):
        if opened[step]:  # sorted
            figures[f"{step}_per_s"] = opened[f"{step}_per_s"]
            figures[f"{step}_p50_ms"] = round(metrics.percentile(opened[step], 50) * 1000, 1)
            figures[f"{step}_p99_ms"] = round(metrics.percentile(opened[step], 99) * 1000, 1)
    return {**figures, **_cpu(opened["cpu"], "connecting")}


def _cpu(figures: dict[str, float], prefix: str) -> dict[str, float]:
    """Server-side CPU% (nodes summed, and each other role) under ``prefix``."""
    groups = ("node", "loadgen", "sender")
    out = {f"{prefix}_cpu_{g}s": sum(v for k, v in figures.items() if k.startswith(g)) for g in groups
           if any(k.startswith(g) for k in figures)}
    out.update({f"{prefix}_cpu_{k}": v for k, v in figures.items() if not k.startswith(groups)})
    return out


def capacity(kind: str, clients: int, nodes: int, layer: str) -> Result:
    """Connections held, RSS before/after, KB per connection, connect rate, CPU while connecting and idle."""
    with session(kind, nodes, clients, layer) as s:
        s.warm_up()
        before = {pid: rss_kb(pid) for pid in s.target.node_pids}
        opened = s.connect(list(range(1, clients + 1)))
        errors = opened["errors"]
        time.sleep(SETTLE)
        held, online = s.held(), s.target.online()
        after = {pid: rss_kb(pid) for pid in s.target.node_pids}
        meter = s.cpu()
        time.sleep(SETTLE)
        idle = meter.percent()
    figures = {**_connected(opened, clients), "held": held, "online_in_store": online,
               "rss_before_mb": round(sum(before.values()) / 1024), "rss_after_mb": round(sum(after.values()) / 1024),
               "rss_max_node_mb": round(max(after.values()) / 1024),
               "kb_per_conn": metrics.kb_per_connection(sum(before.values()), sum(after.values()), held),
               "idle_cpu_nodes": sum(v for k, v in idle.items() if "node" in k)}
    plot = {"per_s": figures["connect_per_s"], "loadgen_cpu": figures.get("connecting_cpu_loadgens")}
    return {"metrics": figures, "plot": plot, "errors": errors}


def broadcast(kind: str, clients: int, layer: str) -> Result:
    """One broadcast to every connection, then 10 back to back: time to all, deliveries/s, lost, loop lateness."""
    with session(kind, 1, clients, layer) as s:
        opened = s.connect(list(range(1, clients + 1)))
        time.sleep(2)
        held = s.held()
        sender = s.start_senders()
        started = time.time()
        meter = s.cpu()
        sent = sender.one("broadcast", count=1)
        s.loadgens.wait_frames(held * sent["sent"])
        single_cpu = meter.percent()
        single = s.loadgens.take()
        time.sleep(loopprobe.REPORT_EVERY + 0.5)  # the probe's window covering the broadcast is printed
        lateness = loopprobe.p99_during(s.target.probe_file(0), started, max(single["recv"], default=started))
        meter = s.cpu()
        sent_burst = sender.one("broadcast", count=10)
        s.loadgens.wait_frames(held * sent_burst["sent"])
        burst_cpu = meter.percent()
        burst = s.loadgens.take()
    one = metrics.deliveries(single["recv"], single["ts"], held * sent["sent"])
    ten = metrics.deliveries(burst["recv"], burst["ts"], held * sent_burst["sent"])
    figures = {**_connected(opened, clients), "held": held,
               "b1_time_to_all_ms": one["time_to_all_ms"], "b1_per_s": one["per_s"], "b1_lost": one["lost"],
               "b10_time_to_all_ms": ten["time_to_all_ms"], "b10_per_s": ten["per_s"], "b10_lost": ten["lost"],
               "loop_p99_ms": lateness, "send_failed": sent["failed"] + sent_burst["failed"],
               **_cpu(single_cpu, "b1"), **_cpu(burst_cpu, "burst")}
    latency = metrics.latency_ms(single["recv"], single["ts"])
    plot = {"latency_ms": latency, "per_s": ten["per_s"], "loadgen_cpu": figures.get("burst_cpu_loadgens")}
    return {"metrics": figures, "plot": plot}


def private(kind: str, clients: int, rate: int, seconds: float, flood: int, senders: int, layer: str) -> Result:
    """Messages to random clients over 3 nodes: paced (latency, delivered/sent), then as fast as possible."""
    with session(kind, 3, clients, layer) as s:
        opened = s.connect(list(range(1, clients + 1)))
        time.sleep(2)
        sender = s.start_senders(senders)
        meter = s.cpu()
        paced = sender.shared("private", ids=s.ids, rate=rate, seconds=seconds)
        s.loadgens.wait_frames(paced["sent"])
        paced_cpu = meter.percent()
        steady = s.loadgens.take()
        meter.start()
        fast = sender.shared("flood", ids=s.ids, count=flood)
        s.loadgens.wait_frames(fast["sent"])
        fast_cpu = meter.percent()
        flooded = s.loadgens.take()
    latency = metrics.latency_ms(steady["recv"], steady["ts"])
    fast_figures = metrics.deliveries(flooded["recv"], flooded["ts"], fast["sent"])
    figures = {**_connected(opened, clients), "sent": paced["sent"],
               "sent_per_s": round(paced["sent"] / max(paced["seconds"], 1e-9)),
               "delivered_pct": round(100 * len(steady["recv"]) / max(paced["sent"], 1), 2),
               **{f"lat_{k}_ms": v for k, v in latency.items()},
               **_cpu(paced_cpu, "paced"), "flood_sent": fast["sent"],
               "flood_delivered_pct": round(100 * fast_figures["delivered"] / max(fast["sent"], 1), 2),
               "flood_per_s": fast_figures["per_s"], "flood_p99_ms": metrics.latency_ms(
                   flooded["recv"], flooded["ts"])["p99"],
               "send_failed": paced["failed"] + fast["failed"], **_cpu(fast_cpu, "flood")}
    plot = {"latency_ms": latency, "per_s": fast_figures["per_s"], "loadgen_cpu": figures.get("flood_cpu_loadgens")}
    return {"metrics": figures, "plot": plot,
            "errors": {k: v for k, v in (("paced", paced["error"]), ("flood", fast["error"])) if v}}


def chan(kind: str, members: int, layer: str, repeats: int = 3) -> Result:
    """A chan of ``members`` over 3 nodes: one message's time to reach all (median of ``repeats``)."""
    with session(kind, 3, members, layer) as s:
        opened = s.connect(list(range(1, members + 1)), chans=[CHAN])
        sender = s.start_senders()
        sender.one("join", chan=CHAN, ids=s.ids)
        time.sleep(1)
        held = s.held()
        runs, cpus = [], []
        for _ in range(repeats):
            meter = s.cpu()
            sent = sender.one("chan", chan=CHAN, count=1)
            s.loadgens.wait_frames(held * sent["sent"])
            cpus.append(meter.percent())
            runs.append((s.loadgens.take(), held * sent["sent"]))
            time.sleep(0.5)
    results = [metrics.deliveries(r["recv"], r["ts"], expected) for r, expected in runs]
    times = [r["time_to_all_ms"] for r in results]
    latency = metrics.latency_ms([t for r, _ in runs for t in r["recv"]], [t for r, _ in runs for t in r["ts"]])
    figures = {**_connected(opened, members), "held": held, "chan_time_to_all_ms": statistics.median(times),
               "chan_time_to_all_max_ms": max(times), "chan_per_s": statistics.median(r["per_s"] for r in results),
               "chan_lost": sum(r["lost"] for r in results),
               **_cpu({name: statistics.median(c[name] for c in cpus) for name in cpus[0]}, "chan")}
    plot = {"latency_ms": latency, "per_s": figures["chan_per_s"], "loadgen_cpu": figures.get("chan_cpu_loadgens")}
    return {"metrics": figures, "plot": plot}


#: The business side's ways to send private messages: phase -> (sender command, how many times ``sends``).
SEND_WAYS = {"async": ("one_by_one", 1), "sync": ("one_by_one_sync", 0), "batches": ("in_batches", 5)}


def sends(kind: str, clients: int, count: int, sync_count: int, layer: str) -> Result:
    """One sender process pushing private messages to ``clients`` on one node: one call each from 100 coroutines,
    one call each from a plain thread, and in calls of 100. Per way: the sender's rate (calls answered), the
    deliveries, its CPU and Redis round trips per message, Redis commands per message."""
    figures: Result = {}
    with session(kind, 1, clients, layer) as s:
        figures.update(_connected(s.connect(list(range(1, clients + 1))), clients))
        time.sleep(2)
        sender = s.start_senders()
        for phase, (command, times) in SEND_WAYS.items():
            commands = s.target.redis_commands()
            meter = s.cpu()
            sent = sender.one(command, ids=s.ids, count=count * times or sync_count)
            if sent.get("unsupported"):
                continue
            s.loadgens.wait_frames(sent["sent"])
            cpu = meter.percent()
            frames = s.loadgens.take()
            delivered = metrics.deliveries(frames["recv"], frames["ts"], sent["sent"])
            per_message = max(sent["sent"], 1)
            figures.update({
                f"{phase}_sends_per_s": round(sent["sent"] / max(sent["seconds"], 1e-9)),
                f"{phase}_delivered_per_s": delivered["per_s"], f"{phase}_lost": delivered["lost"],
                f"{phase}_sender_us": round(sent["cpu_seconds"] * 1e6 / per_message, 1),
                f"{phase}_round_trips": None if sent["round_trips"] is None
                else round(sent["round_trips"] / per_message, 3),
                f"{phase}_redis_commands": round((s.target.redis_commands() - commands) / per_message, 2),
                f"{phase}_failed": sent["failed"], **_cpu(cpu, phase)})
    plot = {"per_s": figures.get("async_sends_per_s"), "loadgen_cpu": figures.get("async_cpu_loadgens")}
    return {"metrics": figures, "plot": plot}
