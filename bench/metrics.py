"""The figures of a run, computed from what the load generators recorded (pure functions).

Definitions follow research/perf-baseline.md ("Method"): time-to-all = last
receive - send ts; deliveries/s = delivered / (last receive - first send ts);
lost = expected - received once nothing arrived for 5 s; KB/conn = (RSS with N
held after settling - RSS before) / held.
"""

from __future__ import annotations

from collections.abc import Sequence

PERCENTILES = (50, 90, 99)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 if empty)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[min(len(ordered), int(rank)) - 1]


def latency_ms(recv: Sequence[float], ts: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max of ``recv - ts`` in milliseconds."""
    ordered = sorted((r - t) * 1000 for r, t in zip(recv, ts, strict=True))
    figures = {f"p{p}": round(percentile(ordered, p), 1) for p in PERCENTILES}
    figures["max"] = round(ordered[-1], 1) if ordered else 0.0
    return figures


def deliveries(recv: Sequence[float], ts: Sequence[float], expected: int) -> dict[str, float]:
    """Delivered, lost, time to all (ms) and deliveries/s of a phase whose frames carry their send ``ts``."""
    delivered = len(recv)
    if not delivered:
        return {"delivered": 0, "lost": expected, "time_to_all_ms": 0.0, "per_s": 0.0}
    first, last = min(ts), max(recv)
    span = max(last - first, 1e-9)
    return {"delivered": delivered, "lost": max(expected - delivered, 0), "time_to_all_ms": round(span * 1000, 1),
            "per_s": round(delivered / span)}


def rate(times: Sequence[float], since: float) -> float:
    """Events per second from ``since`` to the last of ``times`` (ascending)."""
    if not times:
        return 0.0
    return round(len(times) / max(times[-1] - since, 1e-9))


def kb_per_connection(rss_before_kb: int, rss_after_kb: int, held: int) -> float:
    return round((rss_after_kb - rss_before_kb) / held, 1) if held else 0.0


def ratio(freeim: float | None, baseline: float | None, higher_is_better: bool) -> float | None:
    """How many times better freeim is than the baseline on a figure (> 1: freeim better)."""
    if not freeim or not baseline:
        return None
    return round(freeim / baseline if higher_is_better else baseline / freeim, 2)
