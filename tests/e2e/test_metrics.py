"""Metrics of a real cluster (tests/e2e/cluster.py with two daphne nodes): a node's scrape after traffic, the reap
of its killed peer and its own garbage collections; a ``freeim_events`` worker's on its ``--metrics-port``; this
process's (the business side's) helper calls. Run with ``-s`` to see the node's scrape."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from demo_project.cluster import free_port
from freeim import im
from freeim.backends import get_backend
from freeim.conf import server_base
from tests.e2e.cluster import HEARTBEAT_TTL, Cluster

pytest_plugins = ["tests.e2e.cluster"]  # the processes' log tails in the report of a failing test

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    running = Cluster(size=2)
    try:
        running.boot()
        yield running
    finally:
        running.stop_all()


def scrape(base: str) -> tuple[str, Samples]:
    with NO_PROXY.open(base, timeout=5) as answer:
        text = answer.read().decode()
    return text, {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                  for family in text_string_to_metric_families(text) for sample in family.samples}


async def terminal_on(server: str, client_id: str) -> ClientConnection:
    """A socket of ``client_id`` on ``server``, whatever the router says."""
    token = uuid.uuid4().hex
    await get_backend().store.issue_token(token, {"client_id": client_id, "meta": "", "server": server}, 10)
    return await connect(f"{server_base(server)}/ws?token={token}", proxy=None, close_timeout=2)


async def until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{check.__name__} not true within {timeout} s"
        await asyncio.sleep(0.05)


async def test_a_node_shows_its_traffic_the_reap_of_a_dead_peer_and_its_collections(cluster: Cluster) -> None:
    port = free_port()
    cluster.start_worker("--metrics-port", str(port))
    sends = REGISTRY.get_sample_value("freeim_helper_seconds_count", {"helper": "asend_message"}) or 0.0
    here, there = cluster.servers
    with override_settings(FREEIM=cluster.business_settings()):
        alice, bob = await terminal_on(here, "alice"), await terminal_on(there, "bob")
        try:
            for n in range(5):
                await im.asend_message("system", ["alice", "bob"], {"n": n})
            await im.asend_broadcast_message("to all")
            for terminal in (alice, bob):
                for _ in range(6):
                    json.loads(await asyncio.wait_for(terminal.recv(), 5))
            cluster.kill(1)  # bob's node: node 0 reaps it once its heartbeat is older than the TTL

            async def bob_offline() -> bool:
                return not await im.ahas_online("bob")

            await until(bob_offline, HEARTBEAT_TTL * 3)
        finally:
            await alice.close()
            await bob.close()
    assert REGISTRY.get_sample_value("freeim_helper_seconds_count", {"helper": "asend_message"}) == sends + 5

    text, node = scrape(f"http://{here}/freeim/metrics")
    print("\n" + "\n".join(line for line in text.splitlines() if line.startswith("freeim_")
                           and "_bucket" not in line and "_created" not in line))
    assert node[("freeim_transport_lag_seconds_count", ())] >= 6  # a batch per send
    assert node[("freeim_payloads_total", (("op", "send"),))] == 5
    assert node[("freeim_reaper_runs_total", (("outcome", "nothing_dead"),))] >= 1
    assert node[("freeim_reaper_runs_total", (("outcome", "reaped"),))] == 1
    assert node[("freeim_reaped_nodes_total", ())] == 1
    assert node[("freeim_time_to_offline_seconds_count", ())] == 1
    assert HEARTBEAT_TTL <= node[("freeim_time_to_offline_seconds_sum", ())] < HEARTBEAT_TTL * 3
    assert node[("freeim_redis_seconds_count", (("kind", "pipeline:heartbeat"),))] >= 1  # the beat and its mark
    assert node[("freeim_gc_pause_seconds_count", (("generation", "2"),))] >= 1  # the heap keeper's, at the start
    assert ("freeim_accept_pauses_total", ()) in node
    assert not any(name == "freeim_redis_errors_total" for name, _labels in node)  # Redis never failed it

    _text, worker = scrape(f"http://127.0.0.1:{port}/")
    assert worker[("freeim_redis_seconds_count", (("kind", "xreadgroup"),))] >= 1  # its blocking read of the events
    assert not any(name.startswith("freeim_node_") for name, _labels in worker)  # a business process: no node
