"""How responsive a node's event loop is: the lateness of a small periodic task.

Off by default. With ``FREEIM_LOOP_PROBE=<file>`` in a node's environment, the
node wakes every 10 ms and appends one JSON line per second to ``<file>``:
``{"time", "node", "clients", "samples", "p50_ms", "p99_ms", "max_ms"}``,
where a sample is how much later than asked the task woke up. (It does not
report ``gc.get_freeze_count()``: that walks every frozen object, half a
second a second at 8,000 sockets.) Benchmarks read
it to see whether fan-out or a garbage collection starves the loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable

PROBE_ENV = "FREEIM_LOOP_PROBE"
INTERVAL = 0.01
REPORT_EVERY = 1.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``sorted_values`` lie (nearest rank)."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def summary(lateness: list[float]) -> dict[str, float]:
    """p50/p99/max of lateness samples (seconds), in milliseconds."""
    ordered = sorted(lateness)
    return {"samples": len(ordered), "p50_ms": round(percentile(ordered, 0.5) * 1000, 2),
            "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
            "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 2)}


async def run_probe(path: str, node: str, clients: Callable[[], int]) -> None:
    """Sample the loop's lateness forever, appending a summary line to ``path`` every second."""
    lateness: list[float] = []
    reported = time.monotonic()
    with open(path, "a", encoding="utf-8") as out:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(INTERVAL)
            now = time.monotonic()
            lateness.append(max(0.0, now - asked - INTERVAL))
            if now - reported >= REPORT_EVERY:
                line = {"time": time.time(), "node": node, "clients": clients(), **summary(lateness)}
                out.write(json.dumps(line) + "\n")
                out.flush()
                lateness, reported = [], now


def probe_path() -> str | None:
    """Where this process's probe writes, if it is enabled."""
    return os.environ.get(PROBE_ENV) or None
