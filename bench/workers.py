"""The controller's handles on its worker processes: load generators and the sender.

Each worker is a spawned process that runs commands ``(name, kwargs)`` read from
a pipe and answers each (``bench.loadgen.serve``, ``bench.sender.serve``).
:class:`Loadgens` spreads clients over as many load processes as the open-file
limit needs and merges what they report.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from bench import loadgen, sender

#: Sockets one load process holds at most: the fd limit is 20,000 per process.
PER_PROCESS = 15_000
#: Handshakes in flight over all load processes (the reference harness used 50).
CONCURRENCY = 50
_spawn = multiprocessing.get_context("spawn")


class Worker:
    """One worker process and its command pipe."""

    def __init__(self, entry: Callable[..., None], *args: Any) -> None:
        self.conn, child = _spawn.Pipe()
        self.process = _spawn.Process(target=entry, args=(child, *args), daemon=True)
        self.process.start()
        child.close()

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def send(self, name: str, **kwargs: Any) -> None:
        self.conn.send((name, kwargs))

    def recv(self, timeout: float = 900) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"worker {self.pid} did not answer within {timeout} s")
        return self.conn.recv()

    def call(self, name: str, timeout: float = 900, **kwargs: Any) -> Any:
        self.send(name, **kwargs)
        return self.recv(timeout)

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


class Group:
    """Worker processes of one kind, commanded together."""

    workers: list[Worker]

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def _all(self, name: str, per_worker: Iterable[dict[str, Any]] | None = None, **kwargs: Any) -> list[Any]:
        """Send ``name`` to every worker (all start at once), then collect the answers."""
        arguments = list(per_worker) if per_worker is not None else [kwargs] * len(self.workers)
        for worker, args in zip(self.workers, arguments, strict=True):
            worker.send(name, **args)
        return [worker.recv() for worker in self.workers]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class Senders(Group):
    """Sender processes for ``target`` (its kind and environment), connected before the clock starts."""

    def __init__(self, target: dict[str, Any], count: int) -> None:
        self.workers = [Worker(sender.serve, target) for _ in range(count)]
        #: Per sender, the processes that send for it (Socket.IO's node emitter): their CPU is the sender's.
        self.helpers: list[list[int]] = self._all("ready")

    def one(self, name: str, **kwargs: Any) -> Any:
        """A command for the first sender alone (a broadcast or chan message is one business call)."""
        return self.workers[0].call(name, **kwargs)

    def shared(self, name: str, **kwargs: Any) -> dict[str, Any]:
        """A command every sender runs for its share of ``rate`` or ``count``; the answers added up."""
        n = len(self.workers)
        shares = [{**kwargs, "seed": index, **{k: kwargs[k] / n for k in ("rate",) if k in kwargs},
                   **{k: kwargs[k] // n for k in ("count",) if k in kwargs}} for index in range(n)]
        results = self._all(name, shares)
        return {"sent": sum(r["sent"] for r in results), "failed": sum(r["failed"] for r in results),
                "seconds": max(r["seconds"] for r in results),
                "error": next((r["error"] for r in results if r["error"]), None)}


class Loadgens(Group):
    """Enough load processes for ``clients`` sockets; each client id belongs to one of them."""

    def __init__(self, clients: int) -> None:
        count = max(1, -(-clients // PER_PROCESS))
        self.workers = [Worker(loadgen.serve, index) for index in range(count)]

    def open(self, target: dict[str, Any], ids: list[int]) -> dict[str, Any]:
        """Connect ``ids`` (all load processes at once); the merged open times, failures and errors."""
        n = len(self.workers)
        per = max(1, CONCURRENCY // n)
        results = self._all("open", ({"target": target, "ids": ids[i::n], "concurrency": per} for i in range(n)))
        errors: Counter[str] = Counter()
        for result in results:
            errors.update(result["errors"])
        merged = {key: array("d", sorted(t for r in results for t in r[key]))
                  for key in ("opened", "rest", "handshake")}
        rates = {f"{step}_per_s": round(sum(len(r[step]) / r[f"{step}_seconds"] for r in results
                                                if r[f"{step}_seconds"] and r[step]))
                 for step in ("rest", "handshake")}  # processes run side by side: their rates add up
        return {"started": min(r["started"] for r in results), "failed": sum(r["failed"] for r in results),
                "errors": dict(errors), **merged, **rates}

    def stats(self) -> dict[str, Any]:
        results = self._all("stats")
        closes: Counter[int] = Counter()
        for result in results:
            closes.update(result["closes"])
        return {"open": sum(r["open"] for r in results), "frames": sum(r["frames"] for r in results),
                "other": sum(r["other"] for r in results), "closes": dict(closes),
                "last": max(r["last"] for r in results)}

    def wait_frames(self, expected: int, quiet: float = 5.0, limit: float = 600) -> int:
        """Poll until ``expected`` frames arrived, or none for ``quiet`` seconds; the frames received."""
        frames, progress = -1, time.monotonic()
        deadline = progress + limit
        while time.monotonic() < deadline:
            now = self.stats()["frames"]
            if now >= expected:
                return now
            if now != frames:
                frames, progress = now, time.monotonic()
            elif time.monotonic() - progress > quiet:
                break
            time.sleep(0.05)
        return max(frames, 0)

    def take(self) -> dict[str, array]:
        """Every frame recorded since the last take, merged: ``recv``, ``ts`` and ``seq`` arrays."""
        merged = {"recv": array("d"), "ts": array("d"), "seq": array("q")}
        for result in self._all("take"):
            for key, values in merged.items():
                values.extend(result[key])
        return merged

    def close(self) -> None:
        self._all("close")
