"""Concurrent sends in one loop share their round trips, and each caller still gets its own answer."""

import asyncio

import pytest

from freeim import im
from freeim.backends import Backend, get_backend
from freeim.exceptions import StoreUnavailable
from freeim.messaging import operations
from freeim.messaging.coalescing import Coalescer
from freeim.testing import connected, eventually
from tests.asgi import application
from tests.frames import unpositioned


class HeldTransport:
    """The memory transport, whose first publish waits until the test lets it go."""

    def __init__(self, transport):
        self.transport, self.publishes, self.release = transport, 0, asyncio.Event()

    def __getattr__(self, name):
        return getattr(self.transport, name)

    async def publish(self, batches):
        self.publishes += 1
        if self.publishes == 1:
            await self.release.wait()
        await self.transport.publish(batches)


class CountingStore:
    """The memory store, counting store calls (each a round trip in Redis), failing them when told to."""

    def __init__(self, store):
        self.store, self.calls, self.fail = store, 0, False

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def store_messages(self, letters, senders):
        self.calls += 1
        await asyncio.sleep(0)  # as a round trip does: others queue meanwhile
        if self.fail:
            raise StoreUnavailable("Redis is down")
        return await self.store.store_messages(letters, senders)


@pytest.fixture
def counting():
    real = get_backend()
    store = CountingStore(real.store)
    return store, Coalescer(Backend(store, real.nodes, real.transport))


async def test_a_hundred_concurrent_sends_take_one_store_call_and_each_gets_its_own_answer(counting):
    """One asend_message per call was two round trips each: one process sent 1,266 messages/s."""
    store, coalescer = counting
    async with connected(application, "bob") as bob:
        sends = [operations.prepare_messages([("alice", ["bob", f"absent{n}"], n)]) for n in range(100)]
        answers = await asyncio.gather(*(coalescer.deliver(prepared) for prepared in sends))
        got = [unpositioned(await bob.receive_frame()) for _ in range(100)]
    assert store.calls == 1  # all queued in the turn of the loop the first did
    assert [frame["data"] for frame in got] == list(range(100))  # in the order they were sent
    for n, (prepared, sent) in enumerate(zip(sends, answers, strict=True)):
        assert sent.messages == prepared.messages
        assert [(w.client_id, w.message) for w in sent.waiting] == [(f"absent{n}", n)]  # its own, no other's


async def test_every_caller_of_a_batch_that_fails_gets_the_error_and_the_next_batch_goes(counting):
    store, coalescer = counting
    store.fail = True
    results = await asyncio.gather(*(coalescer.deliver(operations.prepare_messages([("a", ["b"], n)]))
                                     for n in range(5)), return_exceptions=True)
    assert all(isinstance(result, StoreUnavailable) for result in results)
    store.fail = False
    sent = await coalescer.deliver(operations.prepare_messages([("a", ["b"], "again")]))
    assert sent.messages[0].message == "again"


async def test_a_batch_stays_within_max_fanout_bytes(counting, settings):
    settings.FREEIM = {"MAX_FANOUT_BYTES": 300, "MAX_MESSAGE_BYTES": 100}
    store, coalescer = counting
    sends = [operations.prepare_messages([("a", ["b"], "x" * 20)]) for _ in range(10)]  # ~80 bytes each
    await asyncio.gather(*(coalescer.deliver(prepared) for prepared in sends))
    assert store.calls == 4  # three to a batch


async def test_only_senders_that_asked_get_receipts_in_a_mixed_batch():
    async with connected(application, "asks") as asks, connected(application, "silent") as silent:
        asking = [im.asend_message("asks", ["away"], n, receipt=True) for n in (1, 3)]
        await asyncio.gather(asking[0], im.asend_message("silent", ["away"], 2),
                             asking[1])
        receipts = [unpositioned(await asks.receive_frame()) for _ in range(2)]
        assert {(r["to"], r["status"]) for r in receipts} == {("away", "offline")}
        assert await silent.receive_nothing() and await asks.receive_nothing()


async def test_the_next_batch_is_stored_while_the_one_before_is_handed_over_and_they_arrive_in_order():
    """One batch at a time left the process idle while Redis stored and Redis idle while the process routed;
    overlapped, the batches still reach a client in the order of its inbox positions."""
    real = get_backend()
    store, transport = CountingStore(real.store), HeldTransport(real.transport)
    coalescer = Coalescer(Backend(store, real.nodes, transport))
    def send(numbers):
        return [asyncio.ensure_future(coalescer.deliver(operations.prepare_messages([("alice", ["bob"], n)])))
                for n in numbers]

    async with connected(application, "bob") as bob:
        sends = send(range(50))
        await eventually(lambda: transport.publishes == 1)  # the first batch is being handed over...
        sends += send(range(50, 100))
        await eventually(lambda: store.calls == 2)  # ...while the second is stored
        assert transport.publishes == 1 and not any(send.done() for send in sends)
        transport.release.set()
        await asyncio.gather(*sends)
        got = [await bob.receive_frame() for _ in range(len(sends))]
    assert [frame["data"] for frame in got] == list(range(len(sends)))
    offsets = [int(frame["pos"].split(".")[1]) for frame in got]
    assert offsets == sorted(offsets)


async def test_callers_of_a_batch_whose_hand_over_fails_get_the_error_and_later_batches_go():
    real = get_backend()

    class FailingOnce(HeldTransport):
        async def publish(self, batches):
            self.publishes += 1
            if self.publishes == 1:
                raise StoreUnavailable("Redis is down")
            await self.transport.publish(batches)

    coalescer = Coalescer(Backend(real.store, real.nodes, FailingOnce(real.transport)))
    async with connected(application, "bob") as bob:
        first = await asyncio.gather(*(coalescer.deliver(operations.prepare_messages([("a", ["bob"], n)]))
                                       for n in range(50)), return_exceptions=True)
        assert all(isinstance(result, StoreUnavailable) for result in first)
        sent = await coalescer.deliver(operations.prepare_messages([("a", ["bob"], "again")]))
        assert sent.messages[0].message == "again"
        assert unpositioned(await bob.receive_frame())["data"] == "again"
