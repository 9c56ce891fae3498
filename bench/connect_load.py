"""The REST connect step alone: tokens/s and CPU µs per request of one business process.

    python bench/connect_load.py [--requests 6000] [--inflight 50] [--profile stacks.txt]

Starts the bench's freeim target (one node, so ``connect/`` routes over live nodes as in
the capacity scenario, and the business daphne process), then asks ``connect/`` for
``--requests`` tokens, ``--inflight`` at a time, over the load generator's keep-alive
connections (:class:`bench.loadgen.Api`, the capacity scenario's client), and prints the
rate, the latency and the business process's CPU per request, with its share in the kernel
and the context switches of its threads. No WebSocket is opened: this measures the business
side only, and its CPU per request is the figure to compare on a machine shared with other
work. ``--profile FILE`` records where each thread of the business process is meanwhile,
waiting or not (py-spy's collapsed stacks; needs ptrace rights).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import metrics  # noqa: E402
from bench.loadgen import Api  # noqa: E402
from bench.proc import CLOCK_TICKS, cpu_seconds, load_average  # noqa: E402
from bench.targets import FreeIM  # noqa: E402


async def hammer(api: Api, requests: int, inflight: int) -> list[float]:
    """Ask for ``requests`` connect URLs, ``inflight`` at a time; the seconds each took."""
    gate = asyncio.Semaphore(inflight)
    took: list[float] = []

    async def one(client: int) -> None:
        async with gate:
            began = time.perf_counter()
            await api.connect_url(client)
            took.append(time.perf_counter() - began)

    await asyncio.gather(*(one(client) for client in range(1, requests + 1)))
    return took


def usage(pid: int) -> dict[str, float]:
    """Seconds of user and system CPU of ``pid`` (ended threads too), and the context switches of its live threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    found = {"user": int(fields[11]) / CLOCK_TICKS, "system": int(fields[12]) / CLOCK_TICKS, "switches": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                    found["switches"] += int(line.split()[1])
    return found


Measured = tuple[list[float], float, float, dict[str, float]]


async def measure(api: Api, business: int, args: argparse.Namespace) -> Measured:
    """Warm up, then hammer: each request's seconds, the wall, the business process's CPU seconds and its usage."""
    await hammer(api, args.warmup, args.inflight)
    cpu0, wall0, usage0 = cpu_seconds(business), time.perf_counter(), usage(business)
    took = await hammer(api, args.requests, args.inflight)
    used = {key: value - usage0[key] for key, value in usage(business).items()}
    return took, time.perf_counter() - wall0, cpu_seconds(business) - cpu0, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--inflight", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--profile", help="record the business process's threads with py-spy into this file")
    args = parser.parse_args()
    target = FreeIM(nodes=1)
    target.start()
    try:
        business = target.others["business"].pid
        host, port, path = target.client_target()["api"]
        spy = None
        if args.profile:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(business), "--output", args.profile,
                                    "--rate", "200", "--threads", "--idle", "--format", "raw"])
            time.sleep(1)
        took, wall, cpu, used = asyncio.run(measure(Api(host, port, path, target.secret), business, args))
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on an interrupt
            spy.wait()
        took.sort()
        print(f"load average {load_average()}")
        print(f"REST connect: {args.requests / wall:,.0f} tokens/s, {args.inflight} in flight; "
              f"p50 {1000 * metrics.percentile(took, 50):.1f} ms, p99 {1000 * metrics.percentile(took, 99):.1f} ms; "
              f"business process {100 * cpu / wall:.0f} % CPU, {1e6 * cpu / args.requests:,.0f} µs CPU per request "
              f"({100 * used['system'] / max(used['user'] + used['system'], 1e-9):.0f} % in the kernel, "
              f"{used['switches'] / args.requests:.1f} context switches per request)")
    finally:
        target.stop()
        target.remove_logs()


if __name__ == "__main__":
    main()
