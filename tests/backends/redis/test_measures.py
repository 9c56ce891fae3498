"""The Redis backend's measures (freeim.measures): each step's round trip and failure by kind, the reaper's runs
and the time its dead nodes' clients took to go offline."""

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from demo_project.cluster import RedisServer
from freeim.backends.redis import RedisBackend
from freeim.backends.redis.client import kind
from freeim.backends.redis.steps import Lua, Pipe, one
from freeim.exceptions import StoreUnavailable
from tests.blocking import blocking
from tests.waiting import eventually


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_step_is_named_by_its_script_its_command_or_its_pipelines_first_step():
    assert kind(Lua("append", (), ())) == "append" and kind(one("hvals", "k")) == "hvals"
    assert kind(Pipe((one("hvals", "a"),))) == "hvals"  # sent as the one command
    assert kind(Pipe((Lua("append", (), ()), Lua("append", (), ())))) == "pipeline:append"


async def test_each_round_trip_is_timed_by_kind_blocking_and_awaited(backend, sync):
    before = sample("freeim_redis_seconds_count", kind="pipeline:hvals"), sample("freeim_redis_seconds_count",
                                                                                    kind="hvals")
    sync.store.locate([1, 2])  # one pipeline of two HVALS, blocking
    await backend.store.locate([1])  # one HVALS, awaited
    assert sample("freeim_redis_seconds_count", kind="pipeline:hvals") == before[0] + 1
    assert sample("freeim_redis_seconds_count", kind="hvals") == before[1] + 1
    assert sample("freeim_redis_seconds_sum", kind="hvals") > 0


async def test_a_step_that_fails_is_counted_by_kind_and_error_class():
    server = RedisServer()
    server.start()
    try:
        backend = RedisBackend(server.url, "t", 1)
        sync = blocking(backend)
        sync.store.locate([1])
    finally:
        server.stop()
    errors = sample("freeim_redis_errors_total", kind="hvals", error="ConnectionError")
    with pytest.raises(StoreUnavailable):
        sync.store.locate([1])
    with pytest.raises(StoreUnavailable):
        await backend.store.locate([1])
    assert sample("freeim_redis_errors_total", kind="hvals", error="ConnectionError") == errors + 2


def test_reaper_runs_are_counted_by_outcome_and_time_to_offline_observed(backend, sync):
    def runs(outcome):
        return sample("freeim_reaper_runs_total", outcome=outcome)

    before = {outcome: runs(outcome) for outcome in ("nothing_dead", "lock_held", "reaped")}
    reaped, offline = sample("freeim_reaped_nodes_total"), sample("freeim_time_to_offline_seconds_count")
    took = sample("freeim_time_to_offline_seconds_sum")
    sync.nodes.register_node("a", "boot-a")
    sync.nodes.register_node("b", "boot-b")
    sync.store.add_connection("a", 1, "a1")
    assert sync.nodes.reap("b") == []  # a is alive
    time.sleep(1.2)  # a missed its heartbeats for 1.2 s > TTL 1 s
    sync.nodes.register_node("b", "boot-b")
    backend.connections.blocking.set(backend.keys.shared("reaper"), "other", px=5000)
    assert sync.nodes.reap("b") == []  # another node reaps
    backend.connections.blocking.delete(backend.keys.shared("reaper"))
    assert sync.nodes.reap("b") == ["a"]
    assert {outcome: runs(outcome) - count for outcome, count in before.items()} == \
        {"nothing_dead": 1, "lock_held": 1, "reaped": 1}
    assert sample("freeim_reaped_nodes_total") == reaped + 1
    assert sample("freeim_time_to_offline_seconds_count") == offline + 1
    assert 1.2 <= sample("freeim_time_to_offline_seconds_sum") - took < 5  # from a's last beat, by Redis's clock


async def test_the_inbox_hands_each_batch_with_the_time_of_its_entry(backend):
    """The node's transport lag is measured from it (freeim.node.delivery)."""
    received = []
    after = await backend.transport.inbox_tail("a")
    reader = asyncio.create_task(backend.transport.receive("a", lambda batch, sent: received.append(sent), after))
    try:
        published = time.time()
        await backend.transport.publish({"a": [{"op": "broadcast", "frame": "{}"}]})
        await eventually(lambda: received)
        assert abs(received[0] - published) < 0.5  # Redis's clock at XADD, in ms
    finally:
        reader.cancel()


async def test_the_inbox_readers_failures_are_counted_too():
    """The node's inbox reader reads on a connection of its own, not through Connections.issue: its failures
    (it retries every half second) went uncounted."""
    server = RedisServer()
    server.start()
    before = sample("freeim_redis_errors_total", kind="xread", error="ConnectionError")
    try:
        backend = RedisBackend(server.url, "t", 1)
        reader = asyncio.create_task(backend.transport.receive("a", lambda batch, sent: None, "0-0"))
        await asyncio.sleep(0.2)
    finally:
        server.stop()
    try:
        await eventually(lambda: sample("freeim_redis_errors_total", kind="xread", error="ConnectionError") > before)
    finally:
        reader.cancel()
