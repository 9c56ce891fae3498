"""The operations commands, in-process: freeim_status, freeim_send, freeim_broadcast, freeim_offline, on the memory
backend (the node in this process) and on a real Redis; their errors. Against real nodes: tests/e2e/test_cluster.py."""

import io
import json
import re
import subprocess
import sys
import time
import uuid
from unittest.mock import ANY

import pytest
from django.core.management import CommandError, call_command

import freeim
from demo_project.cluster import ROOT, free_port
from freeim import im
from freeim.backends import get_backend
from freeim.conf import conf
from freeim.testing import connected
from tests.asgi import application
from tests.blocking import blocking
from tests.health import report


def run(*args):
    """What the command printed."""
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- the embedded node, in this process ----------------------------------------------------------------------------


async def test_status_shows_the_embedded_node_and_what_it_holds():
    async with connected(application, 1), connected(application, 1), connected(application, 2) as bob:
        await im.ajoin_chan(2, "room")
        status = json.loads(run("freeim_status", "--json", "--chans"))
        assert status == {
            "nodes": [{"name": "local", "state": "alive", "ready": True, "reasons": [], "heartbeat_age": None,
                       "loop_lag_ms": ANY, "connections": 3, "clients": 2, "draining": False, "started": ANY,
                       "version": freeim.__version__}],
            "heartbeat_ttl": None, "connections": 3, "online_clients": 2, "chan_count": 1,
            "chans": [{"chan": "room", "members": 1}], "events": None}
        assert 0 < time.time() - status["nodes"][0]["started"] < 60
        table = run("freeim_status").splitlines()
        assert table[:3] == ["1 node(s), 2 client(s) online on 3 socket(s), 1 chan(s)", "",
                             "node   state  ready  last heartbeat  loop lag  sockets  clients"]
        assert re.fullmatch(r"local  alive  yes                 -  [ 0-9]{5} ms        3        2", table[3]), table[3]
        assert table[4:] == ["", "events: sent by the node itself (embedded mode), no stream"]
        assert run("freeim_send", "system", "2", "3", "--data", '{"text": "hi"}').endswith(
            "; 1 of its 2 receiver(s) online\n")
        assert (await bob.receive_frame())["data"] == {"text": "hi"}
        assert run("freeim_broadcast", "--data", '"maintenance"') == "broadcast sent to every node alive\n"
        assert (await bob.receive_frame()) == {"type": "broadcast", "data": "maintenance"}
        assert run("freeim_offline", "2", "3") == "client 2: closing 1 socket(s) on local\nclient 3: not online\n"
        assert await bob.receive_close() == 4000


# --- a cluster's Redis, from a business process ----------------------------------------------------------------


@pytest.fixture
def cluster_store(redis_server, settings):
    """This process as a business process of a cluster on the test Redis, under a prefix of its own."""
    settings.FREEIM = {"REDIS_URL": redis_server.url, "REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}",
                       "SERVERS": ["a:1", "b:1", "c:1"], "HEARTBEAT_TTL": 10}
    backend = get_backend()
    yield backend
    backend.flush()


def test_status_reads_every_node_the_cluster_knows(cluster_store):
    sync = blocking(cluster_store)
    for node in ("a:1", "b:1", "c:1", "d:1"):
        sync.nodes.register_node(node, "boot")
    for node, client, conn in (("a:1", 1, "a1"), ("a:1", 1, "a2"), ("b:1", 2, "b1"), ("c:1", "bob", "c1")):
        sync.store.add_connection(node, client, conn)
    sync.store.join(2, ["room"])
    sync.nodes.publish_health("a:1", report(2, 1))
    lagging = {"ready": False, "reasons": ["the loop lags 812 ms"], "loop_lag_ms": 812.4}
    sync.nodes.publish_health("b:1", report(1, 1, **lagging))
    sync.nodes.set_draining("d:1", True)
    sync.nodes.publish_health("d:1", report(0, 0, ready=False, reasons=["the node is draining"], draining=True))
    nodes = cluster_store.keys.shared("nodes")
    redis = cluster_store.connections.blocking
    now_ms = int(redis.zscore(nodes, "a:1"))
    redis.zadd(nodes, {"b:1": now_ms - 7_000, "c:1": now_ms - 60_000})  # b missed beats, c is dead (no report)
    taken = sync.events.read("freeim", "worker-1", 60_000, 10)
    sync.events.ack("freeim", [entry_id for entry_id, _ in taken[:2]])

    status = json.loads(run("freeim_status", "--json"))
    ages = [node.pop("heartbeat_age") for node in status["nodes"]]
    assert ages[0] < 5 and 7 <= ages[1] < 12 and 60 <= ages[2] < 65 and ages[3] < 5
    known = {"started": 1_700_000_000.25, "version": "0.1.0"}
    unknown = {"ready": None, "reasons": [], "loop_lag_ms": None, "draining": False, "started": None, "version": None}
    assert status == {
        "nodes": [{"name": "a:1", "state": "alive", "ready": True, "reasons": [], "loop_lag_ms": 1.0,
                   "connections": 2, "clients": 1, "draining": False, **known},
                  {"name": "b:1", "state": "late", "ready": False, "reasons": ["the loop lags 812 ms"],
                   "loop_lag_ms": 812.4, "connections": 1, "clients": 1, "draining": False, **known},
                  {"name": "c:1", "state": "dead", "connections": 1, "clients": 1, **unknown},
                  {"name": "d:1", "state": "draining", "ready": False, "reasons": ["the node is draining"],
                   "loop_lag_ms": 1.0, "connections": 0, "clients": 0, "draining": True, **known}],
        "heartbeat_ttl": 10, "connections": 4, "online_clients": 3, "chan_count": 1,
        "events": {"length": 3, "groups": [{"name": "freeim", "consumers": 1, "pending": 1, "lag": 0}]}}
    table = run("freeim_status").splitlines()
    assert table[0] == "4 node(s), 3 client(s) online on 4 socket(s), 1 chan(s)"
    assert table[2] == "node  state     ready  last heartbeat  loop lag  sockets  clients"
    assert re.fullmatch(r"a:1   alive     yes         [ 0-9]\.\d s ago      1 ms        2        1", table[3]), table[3]
    assert re.fullmatch(r"b:1   late      no          [ 0-9]\.\d s ago    812 ms        1        1", table[4]), table[4]
    assert re.fullmatch(r"c:1   dead      -          6\d\.\d s ago         -        1        1", table[5]), table[5]
    assert re.fullmatch(r"d:1   draining  no          [ 0-9]\.\d s ago      1 ms        0        0", table[6]), table[6]
    assert table[7:] == ["b:1 is not ready: the loop lags 812 ms", "d:1 is not ready: the node is draining", "",
                         "events stream: 3 kept", "group   consumers  pending  lag", "freeim          1        1    0"]


def test_status_before_any_events_worker_ran(cluster_store):
    assert run("freeim_status").splitlines()[-2:] == ["events stream: 0 kept",
                                                       "no consumer group yet: no freeim_events worker ever ran"]


def test_a_message_to_an_offline_client_waits_in_its_inbox(cluster_store):
    assert run("freeim_send", "system", "42", "--data", '{"text": "later"}', "--key", "k1").endswith(
        "; 0 of its 1 receiver(s) online\n")
    kept = blocking(cluster_store).store.read_inbox(42, "*").messages
    assert [json.loads(message.frame)["data"] for message in kept] == [{"text": "later"}]


# --- bad input and a store that cannot be reached: freeim's message, no traceback -------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("freeim_send", "1", "2", "--data", "hi"), "argument --data: not JSON: "),
    (("freeim_send", "1", "2", "--data", "[" * 70 + "]" * 70), "nested more than 64 levels deep\\. A JSON"),
    (("freeim_send", "1", "x" * 200, "--data", "1"), "Client ids are ints or non-empty strings"),
    (("freeim_send", "1", "2"), "the following arguments are required: --data"),
    (("freeim_broadcast", "--data", "{'single': 'quotes'}"), "argument --data: not JSON: "),
    (("freeim_offline", "x" * 200), "Client ids are ints or non-empty strings"),
])
def test_bad_input_is_a_command_error_with_freeims_message(args, message):
    with pytest.raises(CommandError, match=message.replace("[", r"\[")):
        run(*args)


@pytest.mark.parametrize("command", [("freeim_send", "1", "2"), ("freeim_broadcast",)])
def test_a_message_too_large_is_refused(command):
    with pytest.raises(CommandError, match=r"larger than MAX_MESSAGE_BYTES \(65536\)"):
        run(*command, "--data", json.dumps("x" * conf.MAX_MESSAGE_BYTES))


@pytest.mark.parametrize("args", [("freeim_status",), ("freeim_send", "1", "2", "--data", "1"),
                                  ("freeim_broadcast", "--data", "1"), ("freeim_offline", "1")])
def test_an_unreachable_redis_is_a_command_error(args, settings):
    settings.FREEIM = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    with pytest.raises(CommandError, match="Redis is unavailable"):
        run(*args)


def test_from_a_shell_an_error_is_one_line_and_status_1():
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "manage.py", "freeim_offline", "x" * 200], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("CommandError: Client ids are ints or non-empty strings"), done.stderr
