"""The sender process: the business side that pushes messages while the clock runs.

Each target's business side is a :class:`Business`, sending as that system's own
business code would: freeim through the helper ``freeim.im`` (its async twins),
as a Django view or task would; the Channels baseline with
``channel_layer.group_send`` to ``user.<id>``, ``room.all`` or ``chan.<name>``;
the bare peer with a Redis ``PUBLISH`` of ``<room> <text>``; Socket.IO through
its Redis emitter, a Node.js process (``bench/peers/socketio/emitter.js``) this
one drives line by line. Private messages that are due together go out in one
call where the system has one (freeim's ``asend_messages``, a Redis pipeline, one
write to the emitter); Channels has none, so they go one ``group_send`` each.
Every message carries ``{"seq": n, "ts": <time.time()>}``, stamped when its send
began (in a batch: when it was due), so the load generator measures latency end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.proc import cpu_seconds

PAD = "x" * 60  # ~100-byte payloads, as in the reference harness
PARALLEL = 100  # sends in flight for paced and flood sends, one message each
BATCH = 500  # at most so many private messages per batch call...
BATCHES_IN_FLIGHT = 2  # ...and so many calls in flight
EVERYONE = "room.all"
Data = dict[str, Any]


def text_of(data: Data) -> str:
    """Compact JSON: ``seq`` and ``ts`` stay first, where the load generator looks for them."""
    return json.dumps(data, separators=(",", ":"))


class Business:
    """How one system's business side sends. ``batched``: private messages go out by :meth:`to_clients`."""

    batched = False

    async def ready(self) -> list[int]:
        """Connect before any clock starts; the pids of helper processes whose CPU counts as the sender's."""
        return []

    async def to_client(self, client_id: int, data: Data) -> None:
        raise NotImplementedError

    def to_client_sync(self, client_id: int, data: Data) -> None:
        """One private message from a plain thread, as a sync view or task sends (a system without a blocking
        form raises NotImplementedError)."""
        raise NotImplementedError

    def round_trips(self) -> int | None:
        """Redis round trips this process made so far, where the system counts them (freeim: its metrics)."""
        return None

    async def to_clients(self, messages: list[tuple[int, Data]]) -> None:
        raise NotImplementedError

    async def to_everyone(self, data: Data) -> None:
        raise NotImplementedError

    async def to_chan(self, chan: str, data: Data) -> None:
        raise NotImplementedError

    async def join(self, chan: str, ids: list[int]) -> None:
        """Put online clients in ``chan``. The peers' clients joined theirs when they connected."""

    async def close(self) -> None:
        pass


class FreeIM(Business):
    batched = True

    def __init__(self) -> None:
        import django

        django.setup()
        from freeim import im

        self.im = im

    async def ready(self) -> list[int]:
        await self.im.aget_chan_list()  # opens the connection pool
        return []

    async def to_client(self, client_id: int, data: Data) -> None:
        await self.im.asend_message(0, [client_id], data)

    def to_client_sync(self, client_id: int, data: Data) -> None:
        self.im.send_message(0, [client_id], data)

    def round_trips(self) -> int | None:
        from prometheus_client import REGISTRY

        return round(sum(sample.value for family in REGISTRY.collect() if family.name == "freeim_redis_seconds"
                         for sample in family.samples if sample.name.endswith("_count")))

    async def to_clients(self, messages: list[tuple[int, Data]]) -> None:
        await self.im.asend_messages([(0, [client_id], data) for client_id, data in messages])

    async def to_everyone(self, data: Data) -> None:
        await self.im.asend_broadcast_message(data)

    async def to_chan(self, chan: str, data: Data) -> None:
        await self.im.asend_chan_message(0, chan, data)

    async def join(self, chan: str, ids: list[int]) -> None:
        gate = asyncio.Semaphore(PARALLEL)

        async def one(client_id: int) -> None:
            async with gate:
                await self.im.ajoin_chan(client_id, chan)

        await asyncio.gather(*(one(c) for c in ids))


class Channels(Business):
    def __init__(self) -> None:
        import django

        django.setup()
        from channels.layers import get_channel_layer

        self.layer = get_channel_layer()

    async def _group(self, group: str, data: Data) -> None:
        await self.layer.group_send(group, {"type": "im.message", "text": text_of(data)})

    async def ready(self) -> list[int]:
        await self.layer.group_send("bench.warmup", {"type": "im.message", "text": "{}"})
        return []

    async def to_client(self, client_id: int, data: Data) -> None:
        await self._group(f"user.{client_id}", data)

    def to_client_sync(self, client_id: int, data: Data) -> None:
        from asgiref.sync import async_to_sync  # what a sync Django view or task calls

        async_to_sync(self._group)(f"user.{client_id}", data)

    async def to_everyone(self, data: Data) -> None:
        await self._group(EVERYONE, data)

    async def to_chan(self, chan: str, data: Data) -> None:
        await self._group(f"chan.{chan}", data)


class Bare(Business):
    """``PUBLISH bench.im "<room> <text>"`` (``bench.peers.bare_server``); a batch is one pipeline."""

    batched = True

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        from bench.peers.bare_server import CHANNEL

        self.redis, self.channel = redis.Redis.from_url(url), CHANNEL
        self.url = url
        self.blocking: Any = None  # a sync client, made in the thread that sends

    async def ready(self) -> list[int]:
        await self.redis.ping()
        return []

    async def _publish(self, room: str, data: Data) -> None:
        await self.redis.publish(self.channel, f"{room} {text_of(data)}")

    async def to_client(self, client_id: int, data: Data) -> None:
        await self._publish(f"user.{client_id}", data)

    def to_client_sync(self, client_id: int, data: Data) -> None:
        if self.blocking is None:
            import redis

            self.blocking = redis.Redis.from_url(self.url)
        self.blocking.publish(self.channel, f"user.{client_id} {text_of(data)}")

    async def to_clients(self, messages: list[tuple[int, Data]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for client_id, data in messages:
            pipe.publish(self.channel, f"user.{client_id} {text_of(data)}")
        await pipe.execute()

    async def to_everyone(self, data: Data) -> None:
        await self._publish(EVERYONE, data)

    async def to_chan(self, chan: str, data: Data) -> None:
        await self._publish(f"chan.{chan}", data)

    async def close(self) -> None:
        await self.redis.aclose()


class SocketIO(Business):
    """Socket.IO's Redis emitter in a node process: ``<room>\\t<json>`` lines in, ``#`` awaits them all.

    A node backend would call ``emitter.to(room).emit("message", data)``; here every
    call is a line to ``emitter.js``, and a send is done when the emitter says its
    PUBLISHes reached Redis (answers come in order: :attr:`acks` is a FIFO).
    """

    batched = True

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.acks: deque[asyncio.Future[None]] = deque()
        self.process: asyncio.subprocess.Process | None = None

    async def ready(self) -> list[int]:
        self.process = await asyncio.create_subprocess_exec(*self.command, stdin=asyncio.subprocess.PIPE,
                                                            stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        if await self.process.stdout.readline() != b"\n":  # emitter.js's "ready"
            raise RuntimeError(f"the Socket.IO emitter did not start ({self.command})")
        self.reader = asyncio.create_task(self._read_acks())
        return [self.process.pid]

    async def _read_acks(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            ack = self.acks.popleft()
            if line == b"\n":
                ack.set_result(None)
            else:
                ack.set_exception(RuntimeError(f"emitter: {line.decode(errors='replace').strip()}"))
        for ack in self.acks:
            ack.set_exception(RuntimeError("the Socket.IO emitter exited"))

    async def _emit(self, lines: list[str]) -> None:
        assert self.process is not None and self.process.stdin is not None
        ack = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        self.process.stdin.write(("".join(lines) + "#\n").encode())
        await ack

    async def to_client(self, client_id: int, data: Data) -> None:
        await self._emit([f"user.{client_id}\t{text_of(data)}\n"])

    async def to_clients(self, messages: list[tuple[int, Data]]) -> None:
        await self._emit([f"user.{client_id}\t{text_of(data)}\n" for client_id, data in messages])

    async def to_everyone(self, data: Data) -> None:
        await self._emit([f"\t{text_of(data)}\n"])

    async def to_chan(self, chan: str, data: Data) -> None:
        await self._emit([f"chan.{chan}\t{text_of(data)}\n"])

    async def close(self) -> None:
        if self.process is None:  # never started
            return
        if self.process.stdin is not None:
            self.process.stdin.close()  # emitter.js quits its Redis client and exits
        await asyncio.wait_for(self.process.wait(), 10)


def business(target: dict[str, Any]) -> Business:
    """The business side of ``target`` (``bench.targets.Target.sender_target``)."""
    kind = target["kind"]
    if kind in ("freeim", "channels"):
        os.environ.update(target["env"])
        return FreeIM() if kind == "freeim" else Channels()
    if kind == "bare":
        return Bare(target["redis"])
    if kind == "socketio":
        return SocketIO(target["emitter"])
    raise ValueError(f"no business side for {kind!r}")


class Sender:
    """The commands of a sender process: what to send, how fast; :class:`Business` does the sending."""

    def __init__(self, side: Business) -> None:
        self.side = side
        self.seq = 0
        self.helpers: list[int] = []  # processes whose CPU counts as this sender's (Socket.IO's emitter)

    def payload(self) -> Data:
        self.seq += 1
        return {"seq": self.seq, "ts": time.time(), "pad": PAD}

    async def _to_client(self, client_id: int) -> None:
        await self.side.to_client(client_id, self.payload())  # stamped when the send begins

    async def _to_everyone(self) -> None:
        await self.side.to_everyone(self.payload())

    async def _to_chan(self, chan: str) -> None:
        await self.side.to_chan(chan, self.payload())

    # Commands
    async def ready(self) -> list[int]:
        """Connect before any clock starts; the pids of helper processes (see :meth:`Business.ready`)."""
        self.helpers = await self.side.ready()
        return self.helpers

    async def metrics(self) -> str:
        """This process's Prometheus scrape (freeim: its helper calls and Redis round trips; freeim.measures)."""
        from prometheus_client import REGISTRY, generate_latest

        return generate_latest(REGISTRY).decode()

    async def broadcast(self, count: int) -> dict[str, Any]:
        """``count`` broadcasts back to back, each awaited."""
        return await self._timed([self._to_everyone() for _ in range(count)], parallel=1)

    async def chan(self, chan: str, count: int) -> dict[str, Any]:
        return await self._timed([self._to_chan(chan) for _ in range(count)], parallel=1)

    async def join(self, chan: str, ids: list[int]) -> int:
        await self.side.join(chan, ids)
        return len(ids)

    async def private(self, ids: list[int], rate: float, seconds: float, seed: int = 1) -> dict[str, Any]:
        """Messages to random ``ids`` at ``rate`` per second for ``seconds``."""
        pick = random.Random(seed).choice
        if self.side.batched:
            return await self._batched(lambda elapsed: int(elapsed * rate), seconds, pick, ids)
        gate = asyncio.Semaphore(PARALLEL)
        tasks: list[asyncio.Task[Any]] = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            for _ in range(int(elapsed * rate) - len(tasks)):
                tasks.append(asyncio.create_task(self._gated(gate, self._to_client(pick(ids)))))
            await asyncio.sleep(0.002)
        return await self._collect(tasks, started)

    async def flood(self, ids: list[int], count: int, seed: int = 1) -> dict[str, Any]:
        """``count`` messages to random ``ids`` as fast as the sender can."""
        pick = random.Random(-seed).choice
        if self.side.batched:
            return await self._batched(lambda elapsed: count, 0, pick, ids)
        return await self._timed([self._to_client(pick(ids)) for _ in range(count)], parallel=PARALLEL)

    async def one_by_one(self, ids: list[int], count: int, parallel: int = PARALLEL, seed: int = 1
                         ) -> dict[str, Any]:
        """``count`` messages to random ``ids``, one call each, ``parallel`` callers at once (the requests of
        an async server, a task's fan-out): what the system's batching does for callers that do not batch."""
        pick = random.Random(seed).choice
        return await self._counted(self._timed([self._to_client(pick(ids)) for _ in range(count)], parallel))

    async def one_by_one_sync(self, ids: list[int], count: int, seed: int = 1) -> dict[str, Any]:
        """``count`` messages to random ``ids`` from one plain thread, one blocking call after the other."""
        pick = random.Random(seed).choice

        def send_all() -> dict[str, Any]:
            failed, error = 0, None
            started = time.monotonic()
            for _ in range(count):
                try:
                    self.side.to_client_sync(pick(ids), self.payload())
                except NotImplementedError:
                    raise
                except Exception as problem:
                    failed, error = failed + 1, error or problem
            return {"sent": count - failed, "failed": failed, "seconds": time.monotonic() - started,
                    "error": repr(error)[:200] if error else None}

        try:
            return await self._counted(asyncio.to_thread(send_all))
        except NotImplementedError:
            return {"sent": 0, "failed": 0, "seconds": 0.0, "error": None, "unsupported": True}

    async def in_batches(self, ids: list[int], count: int, size: int = 100, parallel: int = 10, seed: int = 1
                         ) -> dict[str, Any]:
        """``count`` messages (rounded down to whole calls) to random ``ids`` in calls of ``size`` (freeim's
        ``asend_messages``), ``parallel`` calls at once."""
        if not self.side.batched:
            return {"sent": 0, "failed": 0, "seconds": 0.0, "error": None, "unsupported": True}
        pick = random.Random(seed).choice
        chunks = [[(pick(ids), self.payload()) for _ in range(size)] for _ in range(count // size)]
        result = await self._counted(self._timed([self.side.to_clients(chunk) for chunk in chunks], parallel))
        return {**result, "sent": result["sent"] * size, "failed": result["failed"] * size}

    async def _counted(self, sending: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """``sending``'s answer with the sender's CPU seconds (its helper processes' included) and Redis round
        trips meanwhile."""
        trips, cpu = self.side.round_trips(), self._cpu_seconds()
        result = await sending
        after = self.side.round_trips()
        return {**result, "cpu_seconds": self._cpu_seconds() - cpu,
                "round_trips": after - trips if after is not None and trips is not None else None}

    def _cpu_seconds(self) -> float:
        return time.process_time() + sum(cpu_seconds(pid) for pid in self.helpers)

    async def _batched(self, due: Callable[[float], int], seconds: float, pick: Callable[[list[int]], int],
                       ids: list[int]) -> dict[str, Any]:
        """What is due goes out in one :meth:`Business.to_clients` call (freeim: one presence lookup and
        one write per node for all of it) while the previous calls are in flight, as a business process
        pushing many messages would. Each message's ``ts`` is when it was due."""
        pending: list[tuple[int, Data]] = []
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
                    await self.side.to_clients(batch)
                    sent += len(batch)
                except Exception as error:  # counted and reported, like a failed single send
                    failed += len(batch)
                    errors.append(error)

        started = time.monotonic()
        drainers = [asyncio.create_task(drain()) for _ in range(BATCHES_IN_FLIGHT)]
        while True:
            elapsed = time.monotonic() - started
            for _ in range(due(elapsed) - made):
                pending.append((pick(ids), self.payload()))
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
    """The process's entry point: set up ``target``'s business side, then run commands until ``None``."""

    async def main() -> None:
        sender = Sender(business(target))
        loop = asyncio.get_running_loop()
        try:
            while (command := await loop.run_in_executor(None, conn.recv)) is not None:
                name, kwargs = command
                conn.send(await getattr(sender, name)(**kwargs))
        finally:
            await sender.side.close()

    asyncio.run(main())
