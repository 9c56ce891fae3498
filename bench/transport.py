"""Throughput of freeim's Redis transport: one sender process, one node reader process.

    python bench/transport.py [--redis redis://127.0.0.1:6379/15] [--messages 200000]

For each batch size (messages per XADD entry: the helper sends one entry per
node per call, carrying every payload for that node) the sender publishes
``--messages`` chat payloads as fast as it can, and a separate process reads them
through ``RedisBackend.receive`` (the node's reader) and decodes them. Prints
messages/s sent and received. The keys live under a throwaway prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import uuid

from django.conf import settings

from freeim import protocol
from freeim.backends import run_blocking
from freeim.backends.redis import RedisBackend

if not settings.configured:  # the backend reads its limits from FREEIM
    settings.configure(FREEIM={})

NODE = "bench-node"


def read(url: str, prefix: str, expected: int, ready: multiprocessing.Event, result: multiprocessing.Queue) -> None:
    backend = RedisBackend(url, prefix, 10)
    received = 0
    first = last = 0.0

    def deliver(payloads: list[dict], _sent: float) -> None:
        nonlocal received, first, last
        if not received:
            first = time.perf_counter()
        received += len(payloads)
        last = time.perf_counter()
        if received >= expected:
            done.set()

    async def main() -> None:
        reader = asyncio.create_task(backend.transport.receive(NODE, deliver, await backend.transport.inbox_tail(NODE)))
        ready.set()
        await asyncio.wait_for(done.wait(), 120)
        reader.cancel()

    done = asyncio.Event()
    asyncio.run(main())
    result.put((received, last - first))


def run(url: str, messages: int, batch: int) -> tuple[float, float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    ready, result = multiprocessing.Event(), multiprocessing.Queue()
    reader = multiprocessing.Process(target=read, args=(url, prefix, messages, ready, result))
    reader.start()
    ready.wait(10)
    backend = RedisBackend(url, prefix, 10)
    frame = protocol.message_frame("0" * 16, 1, {"text": "x" * 60, "seq": 0})
    payloads = [{"op": "send", "to": [2], "frame": frame, "receipt": None}] * batch
    started = time.perf_counter()
    for _ in range(messages // batch):
        run_blocking(backend.blocking().transport.publish({NODE: payloads}))
    sent_in = time.perf_counter() - started
    received, read_in = result.get(timeout=120)
    reader.join()
    backend.flush()
    return messages / sent_in, received / max(read_in, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--messages", type=int, default=200_000)
    options = parser.parse_args()
    print(f"{'batch':>6} {'sent msg/s':>12} {'received msg/s':>15}")
    for batch in (1, 10, 100):
        sent, received = run(options.redis, options.messages if batch > 1 else options.messages // 10, batch)
        print(f"{batch:>6} {sent:>12,.0f} {received:>15,.0f}")


if __name__ == "__main__":
    main()
