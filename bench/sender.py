"""The sender process: the business side that pushes messages while the clock runs.

freeim: through the helper ``freeim.im`` (its async twins), as a Django view or
task would; private messages that are due together go out in one
``asend_messages`` call (Channels has no batch send). Baseline:
``channel_layer.group_send`` to ``user.<id>``, ``room.all`` or ``chan.<name>``,
as a plain Channels app would. Every message carries
``{"seq": n, "ts": <time.time() when its send began>}`` so the load generator
measures latency end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

PAD = "x" * 60  # ~100-byte payloads, as in the reference harness
PARALLEL = 100  # sends in flight for paced and flood sends
BATCH = 500  # freeim: at most so many private messages per asend_messages call...
BATCHES_IN_FLIGHT = 2  # ...and so many calls in flight
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Sender:
    """One target's ways to send: to one client, to everyone, to a chan."""

    def __init__(self, kind: str) -> None:
        import django

        django.setup()
        self.kind = kind
        self.seq = 0
        if kind == "freeim":
            from freeim import im

            self.im = im
        else:
            from channels.layers import get_channel_layer

            self.layer = get_channel_layer()

    def payload(self) -> dict[str, Any]:
        self.seq += 1
        return {"seq": self.seq, "ts": time.time(), "pad": PAD}

    async def _group(self, group: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        await self.layer.group_send(group, {"type": "im.message", "text": text})

    async def to_client(self, client_id: int) -> None:
        data = self.payload()
        if self.kind == "freeim":
            await self.im.asend_message(0, [client_id], data)
        else:
            await self._group(f"user.{client_id}", data)

    async def to_everyone(self) -> None:
        data = self.payload()
        if self.kind == "freeim":
            await self.im.asend_broadcast_message(data)
        else:
            await self._group("room.all", data)

    async def to_chan(self, chan: str) -> None:
        data = self.payload()
        if self.kind == "freeim":
            await self.im.asend_chan_message(0, chan, data)
        else:
            await self._group(f"chan.{chan}", data)

    # Commands
    async def ready(self) -> bool:
        """Open the connection pool before any clock starts."""
        if self.kind == "freeim":
            await self.im.aget_chan_list()
        else:
            await self.layer.group_send("bench.warmup", {"type": "im.message", "text": "{}"})
        return True

    async def metrics(self) -> str:
        """This process's Prometheus scrape (freeim: its helper calls and Redis round trips; freeim.measures)."""
        from prometheus_client import REGISTRY, generate_latest

        return generate_latest(REGISTRY).decode()

    async def broadcast(self, count: int) -> dict[str, Any]:
        """``count`` broadcasts back to back, each awaited."""
        return await self._timed([self.to_everyone() for _ in range(count)], parallel=1)

    async def chan(self, chan: str, count: int) -> dict[str, Any]:
        return await self._timed([self.to_chan(chan) for _ in range(count)], parallel=1)

    async def join(self, chan: str, ids: list[int]) -> int:
        """Put online clients in ``chan`` (freeim; baseline clients joined at connect)."""
        if self.kind == "freeim":
            gate = asyncio.Semaphore(PARALLEL)

            async def one(client_id: int) -> None:
                async with gate:
                    await self.im.ajoin_chan(client_id, chan)

            await asyncio.gather(*(one(c) for c in ids))
        return len(ids)

    async def private(self, ids: list[int], rate: float, seconds: float, seed: int = 1) -> dict[str, Any]:
        """Messages to random ``ids`` at ``rate`` per second for ``seconds``."""
        pick = random.Random(seed).choice
        if self.kind == "freeim":
            return await self._batched(lambda elapsed: int(elapsed * rate), seconds, pick, ids)
        gate = asyncio.Semaphore(PARALLEL)
        tasks: list[asyncio.Task[Any]] = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            for _ in range(int(elapsed * rate) - len(tasks)):
                tasks.append(asyncio.create_task(self._gated(gate, self.to_client(pick(ids)))))
            await asyncio.sleep(0.002)
        return await self._collect(tasks, started)

    async def flood(self, ids: list[int], count: int, seed: int = 1) -> dict[str, Any]:
        """``count`` messages to random ``ids`` as fast as the sender can."""
        pick = random.Random(-seed).choice
        if self.kind == "freeim":
            return await self._batched(lambda elapsed: count, 0, pick, ids)
        return await self._timed([self.to_client(pick(ids)) for _ in range(count)], parallel=PARALLEL)

    async def _batched(self, due: Callable[[float], int], seconds: float, pick: Callable[[list[int]], int],
                       ids: list[int]) -> dict[str, Any]:
        """freeim: what is due goes out in one ``asend_messages`` call (one presence lookup and
        one write per node for all of it) while the previous calls are in flight, as a
        business process pushing many messages would. Each message's ``ts`` is when it was due."""
        pending: list[tuple[int, list[int], dict[str, Any]]] = []
        made, sent, failed, errors = 0, 0, 0, []
        finished, due_now = asyncio.Event(), asyncio.Event()

        async def drain() -> None:
            nonlocal sent, failed
            while pending or not finished.is_set():
                if not pending:
                    due_now.clear()
                    await due_now.wait()
                    continue
                batch, pending[:] = pending[:BATCH], pending[BATCH:]
                try:
                    await self.im.asend_messages(batch)
                    sent += len(batch)
                except Exception as error:  # counted and reported, like a failed single send
                    failed += len(batch)
                    errors.append(error)

        started = time.monotonic()
        drainers = [asyncio.create_task(drain()) for _ in range(BATCHES_IN_FLIGHT)]
        while True:
            elapsed = time.monotonic() - started
            for _ in range(due(elapsed) - made):
                pending.append((0, [pick(ids)], self.payload()))
                made += 1
            due_now.set()
            if elapsed >= seconds:
                break
            await asyncio.sleep(0.002)
        finished.set()
        due_now.set()
        await asyncio.gather(*drainers)
        return {"sent": sent, "failed": failed, "seconds": time.monotonic() - started,
                "error": repr(errors[0])[:200] if errors else None}

    async def _timed(self, sends: list[Awaitable[None]], parallel: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(parallel)
        started = time.monotonic()
        tasks = [asyncio.create_task(self._gated(gate, s)) for s in sends]
        return await self._collect(tasks, started)

    @staticmethod
    async def _gated(gate: asyncio.Semaphore, send: Awaitable[None]) -> None:
        async with gate:
            await send

    @staticmethod
    async def _collect(tasks: list[asyncio.Task[Any]], started: float) -> dict[str, Any]:
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        return {"sent": len(results) - len(failed), "failed": len(failed), "seconds": time.monotonic() - started,
                "error": repr(failed[0])[:200] if failed else None}


def serve(conn: Connection, target: dict[str, Any]) -> None:
    """The process's entry point: set up Django for ``target``, then run commands until ``None``."""
    os.environ.update(target["env"])

    async def main() -> None:
        sender = Sender(target["kind"])
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, conn.recv)) is not None:
            name, kwargs = command
            conn.send(await getattr(sender, name)(**kwargs))

    asyncio.run(main())
