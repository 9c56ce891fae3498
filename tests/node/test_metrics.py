"""Prometheus metrics on every node (freeim.metrics): what the node holds and has done, read at scrape time."""

import asyncio
import json
import re
from pathlib import Path

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from freeim import im
from freeim.testing import connected
from tests.asgi import application
from tests.node.asgi_http import probe

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "freeim-nodes.json"


async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = await probe("/freeim/metrics")
    assert status == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples}


async def test_a_scrape_shows_the_nodes_sockets_handshakes_closes_and_payloads():
    before = await scrape()

    def grew(name, labels=()):
        key = (name, tuple(labels))
        return after[key] - before.get(key, 0)

    async with connected(application, 1) as alice, connected(application, 2):
        await im.asend_message(2, [1], "hi")
        await alice.receive_frame()
        await im.asend_broadcast_message("all")
        assert (await alice.receive_frame())["type"] == "broadcast"
        after = await scrape()
        node = (("node", "local"),)
        assert after[("freeim_node_connections", node)] == 2 and after[("freeim_node_clients", node)] == 2
        assert after[("freeim_node_ready", node)] == 1 and ("freeim_node_loop_lag_seconds", node) in after
        assert ("freeim_node_backlog_bytes", node) in after
        assert grew("freeim_handshakes_total") == 2
        assert grew("freeim_payloads_total", [("op", "send")]) == 1
        assert grew("freeim_payloads_total", [("op", "broadcast")]) == 1
        await im.aforce_offline(1)
        assert await alice.receive_close() == 4000
    assert not await im.ahas_online(1)
    after = await scrape()
    assert grew("freeim_closes_total", [("code", "4000")]) == 1
    assert ("process_resident_memory_bytes", ()) in after  # prometheus-client's process collector


async def test_the_age_of_each_batch_the_node_applies_is_observed():
    before = await scrape()
    async with connected(application, 1) as alice:
        await im.asend_message(2, [1], "hi")
        await alice.receive_frame()
        await im.asend_broadcast_message("all")
        await alice.receive_frame()
        after = await scrape()
    key = ("freeim_transport_lag_seconds_count", ())
    assert after[key] - before.get(key, 0) == 2  # one batch a send
    assert 0 <= after[("freeim_transport_lag_seconds_sum", ())] - before.get(("freeim_transport_lag_seconds_sum", ()),
                                                                              0) < 1


async def test_a_scrape_from_a_thread_without_the_nodes_loop_answers():
    """prometheus-client's own server and a view under WSGI scrape from another thread: the node's collector
    raised there (no running loop), and the whole scrape failed with it."""
    async with connected(application, 1):
        text = (await asyncio.to_thread(generate_latest, REGISTRY)).decode()
    assert "freeim_handshakes_total" in text and "freeim_node_connections" not in text  # the node is not on it


async def test_refused_handshakes_are_counted_by_why():
    before = await scrape()
    from freeim.testing import FreeIMCommunicator

    assert not (await FreeIMCommunicator(application, "/ws?token=made-up").connect())[0]
    after = await scrape()
    key = ("freeim_handshakes_refused_total", (("reason", "token"),))
    assert after[key] - before.get(key, 0) == 1


async def test_a_scrape_is_a_get_or_a_head():
    """It answered a POST as a GET, where the probes answered 405."""
    assert (await probe("/freeim/metrics", "POST"))[0] == 405
    assert await probe("/freeim/metrics", "HEAD") == (200, b"")


@pytest.mark.parametrize("freeim", [{"METRICS_PATH": None}, {"METRICS_PATH": "/ops/metrics"}])
async def test_the_path_is_a_setting(freeim):
    with override_settings(FREEIM=freeim):
        assert (await probe("/freeim/metrics"))[0] == 404
        if freeim["METRICS_PATH"]:
            assert (await probe("/ops/metrics"))[0] == 200


async def test_every_metric_of_the_grafana_dashboard_is_one_a_node_serves():
    """deploy/grafana/freeim-nodes.json: a renamed metric would leave a panel empty, silently."""
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\b(?:freeim|process|python_gc)_[a-z_]+\b", target["expr"])}
    async with connected(application, 1):
        _status, body = await probe("/freeim/metrics")
    families = list(text_string_to_metric_families(body.decode()))  # those with no sample yet too
    served = {family.name + suffix for family in families for suffix in SUFFIXES.get(family.type, [""])}
    assert queried and queried <= served, queried - served
    assert {"freeim_helper_seconds_bucket", "freeim_gc_pause_seconds_bucket", "freeim_reaper_runs_total"} <= queried


#: The names a family's samples take, by its type.
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
