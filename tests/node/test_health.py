"""The node's probes for load balancers and Kubernetes: live while the loop answers, ready while it may be given
terminals (started, not stopping, its heartbeat reaching the store, its loop on time)."""

import asyncio
import time
import uuid

import pytest
from django.test import override_settings

import freeim
from freeim.backends import get_backend
from freeim.node import health, runtime
from freeim.node.lifecycle import current_node
from freeim.testing import connected
from tests.asgi import application
from tests.node.asgi_http import on_private_redis, probe, start_node, stop_node
from tests.waiting import eventually


async def test_live_at_once_ready_once_the_node_runs_and_not_after():
    assert await probe("/freeim/health/live") == (200, {"live": True})
    assert await probe("/freeim/health/ready") == (503, {"ready": False, "reasons": ["the node has not started"]})
    lifespan = await start_node()
    status, body = await probe("/freeim/health/ready")
    assert status == 200 and body["ready"] and body["node"] == "local" and body["reasons"] == []
    assert body["heartbeat_age"] is None  # one process: no heartbeat to miss
    await stop_node(lifespan)
    assert (await probe("/freeim/health/ready"))[0] == 503


async def test_a_lagging_loop_is_not_ready(settings):
    settings.FREEIM = {"HEALTH_MAX_LOOP_LAG": 0.2}
    lifespan = await start_node()
    await asyncio.sleep(health.LAG_SAMPLE)
    time.sleep(0.5)  # the point: the loop held up for half a second
    await asyncio.sleep(health.LAG_SAMPLE * 2)
    status, body = await probe("/freeim/health/ready")
    assert status == 503 and body["reasons"][0].startswith("the loop lags") and body["loop_lag_ms"] >= 200
    await stop_node(lifespan)


async def test_a_node_whose_store_is_gone_is_not_ready():
    with on_private_redis() as redis:
        lifespan = await start_node()
        status, body = await probe("/freeim/health/ready")
        assert status == 200 and body["heartbeat_age"] < 0.5
        redis.stop()

        async def not_ready():
            return (await probe("/freeim/health/ready"))[0] == 503

        await eventually(not_ready, timeout=5)
        assert (await probe("/freeim/health/ready"))[1]["reasons"][0].startswith("no heartbeat reached the store")
        redis.start()
        await eventually(probe_ok, timeout=5)  # the next heartbeat registers it again
        await stop_node(lifespan)


async def probe_ok():
    return (await probe("/freeim/health/ready"))[0] == 200


@pytest.mark.parametrize("path", ["/freeim/health", "/freeim/health/", "/freeim/health/live/x", "/freeim/healthy"])
async def test_only_the_two_probes_are_answered_the_rest_is_the_projects(path):
    status, _body = await probe(path)
    assert status == 404  # Django's answer: the project has no such route


async def test_probes_can_be_turned_off():
    with override_settings(FREEIM={"HEALTH_PATH": None}):
        assert (await probe("/freeim/health/live"))[0] == 404


async def test_probes_answer_get_and_head_only():
    assert await probe("/freeim/health/live", "HEAD") == (200, b"")
    assert await probe("/freeim/health/ready", "POST") == (405, {"detail": "Probes answer GET and HEAD."})


# --- what a node publishes, for freeim_status and the admin's live-ops page in other processes -------------------


async def test_the_embedded_node_publishes_its_readiness_every_second():
    lifespan = await start_node()
    store = get_backend().nodes
    [first] = (await store.node_health(["local"])).values()  # published as it registered
    assert first["ready"] and first["reasons"] == [] and first["connections"] == 0 and not first["draining"]
    assert first["version"] == freeim.__version__ and 0 <= time.time() - first["started"] < 60

    async def reported_the_socket():
        return (await store.node_health(["local"]))["local"]["connections"] == 1

    async with connected(application, 1):
        await eventually(reported_the_socket, timeout=runtime.REPORT_EVERY * 3)
    await stop_node(lifespan)
    assert await store.node_health(["local"]) == {}  # the node forgot its report as it stopped


async def test_a_node_publishes_its_readiness_with_its_heartbeat_and_at_once_as_it_drains(redis_server):
    with override_settings(FREEIM={"REDIS_URL": redis_server.url, "REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}",
                                   "SERVERS": ["n1:1", "n2:1"], "SERVER": "n1:1", "HEARTBEAT_TTL": 5}):
        backend = get_backend()
        lifespan = await start_node()
        health_key = backend.keys.node("n1:1", "health")
        assert (await backend.nodes.node_health(["n1:1"]))["n1:1"]["ready"] is True
        backend.connections.blocking.delete(health_key)

        async def beaten():
            return await backend.nodes.node_health(["n1:1"]) != {}

        await eventually(beaten, timeout=2)  # the next heartbeat (every second) wrote it again
        await backend.nodes.register_node("n2:1", "peer")  # a node to move terminals to: else it stops undrained
        await current_node().drain(grace=1)  # no socket to move: it returns at once, draining until it stops
        assert (await backend.nodes.node_health(["n1:1"]))["n1:1"] | {"started": 0, "loop_lag_ms": 0} == {
            "ready": False, "reasons": ["the node is draining"], "loop_lag_ms": 0, "draining": True,
            "connections": 0, "clients": 0, "started": 0, "version": freeim.__version__}
        assert await backend.nodes.draining_nodes() == ["n1:1"]
        await stop_node(lifespan)
        assert await backend.nodes.draining_nodes() == []
        backend.flush()
