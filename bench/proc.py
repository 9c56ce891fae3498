"""What the benchmark reads about processes and the machine, from /proc."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PACKAGES = ("Django", "channels", "channels-redis", "daphne", "Twisted", "redis", "hiredis", "websockets", "uvloop")


def rss_kb(pid: int) -> int:
    """Resident memory (VmRSS) of ``pid`` in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` so far, its ended threads' too: its live threads' to the nanosecond
    (``/proc/<pid>/task/*/schedstat``: a broadcast to 5,000 can be over in 60 ms, 6 clock ticks of
    ``/proc/<pid>/stat``), plus, in clock ticks, what threads that ended used (the process's ticks less
    its live threads'): Django's ASGI handler runs each request's sync code on a thread that ends with
    it. Node.js's libuv and V8 threads count. Only ticks where schedstat is missing."""
    live_ns, live_ticks, found = 0, 0, False
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that just ended
                ticks = _ticks(task / "stat")
                live_ns += int((task / "schedstat").read_text().split()[0])
                live_ticks += ticks
                found = True
        total_ticks = _ticks(Path(f"/proc/{pid}/stat"))
    except OSError:
        return 0.0
    if not found:
        return total_ticks / CLOCK_TICKS
    return live_ns / 1e9 + max(0, total_ticks - live_ticks) / CLOCK_TICKS


def _ticks(stat: Path) -> int:
    """utime + stime (fields 14 and 15) of a ``stat`` file of /proc, in clock ticks."""
    fields = stat.read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


class CpuMeter:
    """CPU% (100 = one core) of some processes over a window: ``start()``, then ``percent()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def percent(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.t0, 1e-9)
        return {name: max(0, round(100 * (cpu_seconds(pid) - self.cpu0[name]) / wall))  # < 0: a thread ended
                for name, pid in self.pids.items()}


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> dict[str, str]:
    """The machine and software a report was measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    versions = []
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    import resource

    return {"cpu": f"{os.cpu_count()} x {cpu}", "memory": memory, "kernel": platform.release(),
            "python": sys.version.split()[0], "open files": str(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
            "packages": ", ".join(versions)}
