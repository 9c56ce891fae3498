"""The admin's live-ops page on a cluster's Redis, through Django's test client: each node as it reported itself with
its heartbeat, the events backlog, and a store that cannot be reached. The embedded node's page and who may see it:
tests/groups/test_admin.py; the page refreshing itself in a real browser on a real cluster: tests/e2e/test_browser.py.
"""

import uuid
from unittest.mock import ANY

import pytest
from django.contrib.auth.models import User
from django.test import Client

from demo_project.cluster import free_port
from freeim.backends import get_backend
from freeim.status import NO_GROUP
from tests.blocking import blocking
from tests.groups.test_admin import LIVEOPS, LIVEOPS_STATUS
from tests.health import report

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    client = Client()
    client.force_login(User.objects.create(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def cluster_store(redis_server, settings):
    """This process as a business process of a cluster on the test Redis, under a prefix of its own."""
    settings.FREEIM = {"REDIS_URL": redis_server.url, "REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}",
                       "SERVERS": ["a:1", "b:1", "c:1"], "HEARTBEAT_TTL": 10}
    backend = get_backend()
    yield backend
    backend.flush()


def test_the_page_shows_each_node_as_it_reported_itself_and_the_events_backlog(staff, cluster_store):
    sync = blocking(cluster_store)
    for node in ("a:1", "b:1", "c:1"):
        sync.nodes.register_node(node, "boot")
    sync.store.add_connection("a:1", 1, "a1")
    sync.nodes.publish_health("a:1", report(1, 1))
    sync.nodes.set_draining("b:1", True)
    sync.nodes.publish_health("b:1", report(0, 0, ready=False, reasons=["the node is draining"], draining=True))
    nodes = cluster_store.keys.shared("nodes")
    redis = cluster_store.connections.blocking
    redis.zadd(nodes, {"c:1": int(redis.zscore(nodes, "a:1")) - 60_000})  # dead: its report expired with it

    answer = staff.get(LIVEOPS_STATUS)
    assert answer.status_code == 200 and answer["Cache-Control"].startswith("max-age=0")
    live = answer.json()
    assert live | {"status": None} == {
        "error": None, "summary": "3 node(s), 1 client(s) online on 1 socket(s), 0 chan(s)",
        "nodes": [{"key": "a:1", "state": "alive", "cells": ["a:1", "alive", "yes", ANY, "1 ms", "1", "1", ""]},
                  {"key": "b:1", "state": "draining",
                   "cells": ["b:1", "draining", "no", ANY, "1 ms", "0", "0", "the node is draining"]},
                  {"key": "c:1", "state": "dead", "cells": ["c:1", "dead", "-", ANY, "-", "-", "-", ""]}],
        "events": "events stream: 1 kept", "groups": [], "no_groups": NO_GROUP, "status": None}
    assert [node["state"] for node in live["status"]["nodes"]] == ["alive", "draining", "dead"]  # as freeim_status
    assert [row["cells"][3].endswith(" s ago") for row in live["nodes"]] == [True] * 3
    page = staff.get(LIVEOPS).content.decode()
    assert '<tr data-key="b:1" data-state="draining"><td>b:1</td><td>draining</td><td>no</td>' in page
    assert '<li id="liveops-notice" class="warning" hidden></li>' in page
    assert '<script src="/static/freeim_groups/liveops.js"></script>' in page


def test_a_store_that_cannot_be_reached_is_a_notice_and_the_page_still_renders(staff, settings):
    settings.FREEIM = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    answer = staff.get(LIVEOPS_STATUS)
    assert answer.status_code == 503 and list(answer.json()) == ["error"]
    error = answer.json()["error"]
    assert error.startswith("Redis is unavailable: ") and error.endswith(" Trying again every 2 s.")
    page = staff.get(LIVEOPS)
    assert page.status_code == 200
    text = page.content.decode()
    assert '<div id="liveops" data-source="/admin/freeim_groups/group/liveops/status/" data-every="2000" ' \
           'class="stale">' in text
    assert '<li id="liveops-notice" class="warning">Redis is unavailable: ' in text
