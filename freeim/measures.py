"""What this process measures as it works: helper calls, Redis round trips, a node's transport lag, its reaper and
accept gate, garbage collections (the README's *Metrics* lists each name and label).

They are prometheus-client's own histograms and counters (the ``metrics`` extra), in its default registry: a
node serves them at ``METRICS_PATH``, a business process with :func:`freeim.metrics.view` or
:func:`freeim.metrics.serve`, and its multiprocess mode sums them over a web server's worker processes.
Without prometheus-client nothing is recorded and :func:`timed` leaves a helper as it is. Each is a
``perf_counter`` pair and an observation where it happens (a few µs), nothing per frame.

Garbage collections are timed into plain ints instead (:class:`GcPauses`, read when scraped): a
``gc.callbacks`` hook runs wherever a collection starts, possibly inside a prometheus-client metric's
own lock, which one of its observations would take again.
"""

from __future__ import annotations

import functools
import gc
import inspect
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from time import perf_counter
from typing import Any, TypeVar, cast

try:
    import prometheus_client
    import prometheus_client.core
    import prometheus_client.utils
except ImportError:  # the metrics extra is not installed: nothing is recorded
    prometheus_client = None  # type: ignore[assignment]

F = TypeVar("F", bound=Callable[..., Any])


class _Family:
    """One prometheus-client metric with a child bound once per label values (``labels()`` costs as much as an
    observation); a family without prometheus-client records nothing."""

    kind = ""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = (), **options: Any) -> None:
        self.family = getattr(prometheus_client, self.kind)(name, documentation, labels, **options) \
            if prometheus_client is not None else None
        self._children: dict[tuple[str, ...], Any] = {}

    def child(self, values: tuple[str, ...]) -> Any:
        """The child of ``values`` (the family itself when it has no labels); None without prometheus-client."""
        found = self._children.get(values)
        if found is None and self.family is not None:
            found = self._children[values] = self.family.labels(*values) if values else self.family
        return found


class Histogram(_Family):
    kind = "Histogram"

    def observe(self, value: float, *labels: str) -> None:
        if (child := self.child(labels)) is not None:
            child.observe(value)


class Counter(_Family):
    kind = "Counter"

    def inc(self, *labels: str, amount: float = 1) -> None:
        if (child := self.child(labels)) is not None:
            child.inc(amount)


#: From 100 µs (a call that found its answer in memory) to 10 s (Redis timing out).
HELPER_SECONDS = Histogram(
    "freeim_helper_seconds", "Helper calls (freeim.im) in this process, by the helper's name as called, from the "
    "call to its answer or error.", ["helper"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
REDIS_SECONDS = Histogram(
    "freeim_redis_seconds", "Redis round trips of freeim's steps, by kind: a script's name, a command's, "
    "pipeline:<its first step's>; a wait for a pooled connection and retries included.", ["kind"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
REDIS_ERRORS = Counter("freeim_redis_errors", "Redis steps that failed, by kind and redis-py's error class.",
                       ["kind", "error"])
TRANSPORT_LAG = Histogram(
    "freeim_transport_lag_seconds", "Age of a payload batch when the node applies it: since its entry in the "
    "node's inbox stream (Redis's clock) or, embedded, its publish.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
REAPER_RUNS = Counter("freeim_reaper_runs", "This node's reaper runs, by outcome: nothing_dead, lock_held (another "
                      "node reaps), reaped.", ["outcome"])
REAPED_NODES = Counter("freeim_reaped_nodes", "Dead nodes this node reaped (their clients went offline).")
TIME_TO_OFFLINE = Histogram(
    "freeim_time_to_offline_seconds", "From a reaped node's last heartbeat to its clients being offline.",
    buckets=(1, 2, 5, 10, 12, 15, 20, 30, 60, 120, 300, 600))
ACCEPT_PAUSES = Counter("freeim_accept_pauses", "Times the node stopped accepting connections while its loop "
                        "lagged (daphne's accept gate).")
ACCEPT_PAUSED = Counter("freeim_accept_paused_seconds", "Seconds the accept gate kept the node from accepting, "
                        "counted as each pause ends.")


def timed(helper: F) -> F:
    """``helper`` (sync or async) with each call's time in :data:`HELPER_SECONDS`, under its name."""
    if prometheus_client is None:
        return helper
    name = helper.__name__
    if inspect.iscoroutinefunction(helper):
        @functools.wraps(helper)
        async def awaited(*args: Any, **kwargs: Any) -> Any:
            started = perf_counter()
            try:
                return await helper(*args, **kwargs)
            finally:
                HELPER_SECONDS.observe(perf_counter() - started, name)

        return cast(F, awaited)

    @functools.wraps(helper)
    def blocking(*args: Any, **kwargs: Any) -> Any:
        started = perf_counter()
        try:
            return helper(*args, **kwargs)
        finally:
            HELPER_SECONDS.observe(perf_counter() - started, name)

    return cast(F, blocking)


class GcPauses:
    """Each garbage collection's duration, by generation, counted into plain ints (no lock: see the module's
    docstring) and read when scraped (a prometheus-client collector)."""

    BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

    def __init__(self) -> None:
        #: Per generation: how many collections fell in each bucket (the last: past every bound), and their sum.
        self.counts = [[0] * (len(self.BUCKETS) + 1) for _generation in range(3)]
        self.sums = [0.0] * 3
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = perf_counter()
            return
        seconds, generation = perf_counter() - self._started, info["generation"]
        self.counts[generation][bisect_left(self.BUCKETS, seconds)] += 1
        self.sums[generation] += seconds

    def collect(self) -> Iterator[Any]:
        family = prometheus_client.core.HistogramMetricFamily(
            "freeim_gc_pause_seconds", "Garbage collections of this process, by generation, each's duration.",
            labels=["generation"])
        bounds = [*map(prometheus_client.utils.floatToGoString, self.BUCKETS), "+Inf"]
        for generation, (counts, total) in enumerate(zip(self.counts, self.sums, strict=True)):
            family.add_metric([str(generation)], list(zip(bounds, accumulate(counts), strict=True)), total)
        yield family


GC_PAUSES = GcPauses()
if prometheus_client is not None:
    gc.callbacks.append(GC_PAUSES)
    prometheus_client.REGISTRY.register(GC_PAUSES)
