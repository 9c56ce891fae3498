"""Node-loop responsiveness: the p99 lateness of a 10 ms task in a server's loop, read per phase.

freeim's node runs its own probe (:mod:`freeim.node.probe`) when ``FREEIM_LOOP_PROBE``
names a file: one JSON line per second with ``time`` (end of the window) and
``p99_ms``. The baseline runs the same probe from its consumer
(:func:`ensure_started`), so both are measured alike. :func:`p99_during` takes
the worst window that overlaps a phase.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from freeim.node.probe import REPORT_EVERY, probe_path, run_probe

_task: asyncio.Task[None] | None = None


def ensure_started() -> None:
    """Start the probe once in the running loop, if ``FREEIM_LOOP_PROBE`` names a file (baseline side)."""
    global _task
    path = probe_path()
    if _task is None and path:
        _task = asyncio.get_running_loop().create_task(run_probe(path, "baseline", lambda: 0))


def windows(path: Path) -> list[tuple[float, float]]:
    """``(window end, p99 ms)`` of every line a probe wrote; none if it wrote nothing."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
            found.append((float(record["time"]), float(record["p99_ms"])))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def p99_during(path: Path, start: float, end: float) -> float | None:
    """The worst window p99 overlapping ``[start, end]``; None if the server has no probe."""
    found = [p99 for t, p99 in windows(path) if t >= start and t - REPORT_EVERY <= end]
    return max(found) if found else None
