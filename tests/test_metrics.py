"""A business process's metrics (freeim.metrics): the view a project mounts, behind its token; a port of its own;
several worker processes summed in prometheus-client's multiprocess mode."""

import subprocess
import sys
import urllib.request
import uuid

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from demo_project.cluster import ROOT, free_port
from freeim import im
from freeim.backends import get_backend
from freeim.metrics import serve

TOKEN = "a-token-of-32-characters-or-so-x"


@pytest.fixture
def business(redis_server):
    """This process as a business process of a cluster (no node of its own), with a metrics token."""
    with override_settings(FREEIM={"REDIS_URL": redis_server.url, "SERVERS": ["127.0.0.1:1"],
                                   "REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}", "METRICS_TOKEN": TOKEN}):
        yield
        get_backend().flush()


def families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_the_view_serves_a_scrape_with_the_token(business, client):
    im.has_online(1)
    answer = client.get("/ops/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200 and answer["Cache-Control"] == "no-store"
    served = families(answer.content.decode())
    helper = {s.labels["helper"]: s.value for s in served["freeim_helper_seconds"].samples if s.name.endswith("_count")}
    assert helper["has_online"] >= 1
    kinds = {s.labels["kind"] for s in served["freeim_redis_seconds"].samples}
    assert "hvals" in kinds  # has_online's one round trip
    assert "freeim_handshakes" not in served and "freeim_node_connections" not in served  # no node here
    assert "freeim_gc_pause_seconds" in served and "process_resident_memory_bytes" in served


def test_the_view_answers_401_without_the_token_and_404_while_none_is_set(business, client):
    assert client.get("/ops/metrics").status_code == 401
    wrong = client.get("/ops/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/ops/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405
    with override_settings(FREEIM={}):
        assert client.get("/ops/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_serve_answers_on_a_port_of_its_own_on_the_loopback_address():
    port = free_port()
    server, thread = serve(port)
    try:
        assert server.server_address[0] == "127.0.0.1"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            assert "freeim_helper_seconds" in families(answer.read().decode())
    finally:
        server.shutdown()
        thread.join(5)


WORKER = """
import django, sys
from django.conf import settings
settings.configure(INSTALLED_APPS=["freeim"], FREEIM={"REDIS_URL": sys.argv[1], "SERVERS": ["127.0.0.1:1"],
                                                      "REDIS_PREFIX": sys.argv[2]})
django.setup()
from freeim import im, metrics
from prometheus_client import generate_latest
if sys.argv[3] == "call":
    im.has_online(1)
else:
    print(generate_latest(metrics.registry()).decode())
"""


def test_worker_processes_are_summed_in_prometheus_clients_multiprocess_mode(redis_server, tmp_path):
    """As under a web server with several workers: each writes its own files, any one of them serves the sum."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def run(what):
        done = subprocess.run([sys.executable, "-c", WORKER, redis_server.url, f"t{uuid.uuid4().hex[:8]}", what],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("call")
    run("call")
    served = families(run("scrape"))
    counts = [s.value for s in served["freeim_helper_seconds"].samples
              if s.name == "freeim_helper_seconds_count" and s.labels["helper"] == "has_online"]
    assert counts == [2]
