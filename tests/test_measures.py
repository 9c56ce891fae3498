"""freeim.measures: every helper call timed once under its name, garbage collections by generation."""

import asyncio
import gc

import pytest
from prometheus_client import REGISTRY

from freeim import im, measures
from freeim.exceptions import InvalidMessage
from freeim.testing import connected
from tests.asgi import application


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def calls(helper):
    return sample("freeim_helper_seconds_count", helper=helper)


async def test_a_helper_call_is_timed_once_under_the_name_it_was_called_by():
    """send_message runs send_messages' work: timed as send_message alone, not as both."""
    before = {name: calls(name) for name in ("asend_message", "asend_messages", "send_message", "send_messages",
                                             "ahas_online", "has_online")}
    async with connected(application, 1) as alice:
        await im.asend_message(2, [1], "hi")
        await alice.receive_frame()
        await asyncio.to_thread(im.send_message, 2, [1], "hi again")  # the blocking twin, in a thread of its own
        await alice.receive_frame()
        assert await im.ahas_online(1)
    grew = {name: calls(name) - count for name, count in before.items()}
    assert grew == {"asend_message": 1, "asend_messages": 0, "send_message": 1, "send_messages": 0,
                    "ahas_online": 1, "has_online": 0}
    assert sample("freeim_helper_seconds_sum", helper="asend_message") > 0


async def test_a_failed_call_is_timed_too():
    before = calls("asend_broadcast_message")
    with pytest.raises(InvalidMessage):
        await im.asend_broadcast_message("x" * 70_000)  # past MAX_MESSAGE_BYTES
    assert calls("asend_broadcast_message") == before + 1


def test_every_helper_is_timed_and_no_private_twin_is():
    """A helper left out would have no figure; a private twin timed would count its helper's call twice."""
    def timed(value):
        return getattr(getattr(value, "__code__", None), "co_name", None) in ("awaited", "blocking")  # timed's

    assert [name for name in im.__all__ if not timed(getattr(im, name))] == []
    assert [name for name, value in vars(im).items() if name.startswith("_") and timed(value)] == []


def test_without_prometheus_client_a_helper_is_left_as_it_is(monkeypatch):
    monkeypatch.setattr(measures, "prometheus_client", None)

    def helper():
        return 1

    assert measures.timed(helper) is helper


def test_each_garbage_collection_is_timed_by_generation():
    before = [sample("freeim_gc_pause_seconds_count", generation=str(g)) for g in range(3)]
    gc.collect(0)
    gc.collect(2)
    gc.collect(2)
    after = [sample("freeim_gc_pause_seconds_count", generation=str(g)) for g in range(3)]
    assert after[0] >= before[0] + 1 and after[2] == before[2] + 2  # young ones may run meanwhile, never full ones
    bounds = ("0.0001", "0.01", "1.0", "+Inf")
    buckets = [sample("freeim_gc_pause_seconds_bucket", generation="2", le=le) for le in bounds]
    assert buckets == sorted(buckets) and buckets[-1] == after[2]  # cumulative, as Prometheus reads them
