"""What freeim logs: a documented set of loggers, a line for each connect, refusal and close the node starts
(with client id and node), one line per failing signal receiver, and never a connect token."""

import json
import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from freeim import im, signals
from freeim.backends import get_backend
from freeim.events import handle
from freeim.logs import JSONFormatter
from freeim.node.lifecycle import ensure_node
from freeim.testing import FreeIMCommunicator, connected
from tests.asgi import application

ROOT = Path(__file__).resolve().parent.parent


def section(title):
    """The README's section under ``## title``, up to the next one."""
    readme = (ROOT / "README.md").read_text()
    return readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_logger_is_one_the_readme_documents():
    code = "\n".join(path.read_text() for path in (ROOT / "freeim").rglob("*.py"))
    assert "getLogger(__name__)" not in code  # names follow no module path: they are a documented set
    used = set(re.findall(r'getLogger\("([^"]+)"\)', code))
    documented = set(re.findall(r"^\| `(freeim[a-z.]*)` \|", section("Logging"), re.MULTILINE))
    assert used == documented


def token_of(url):
    return parse_qs(urlsplit(url).query)["token"][0]


async def attempt(url):
    """Open ``url``'s socket: whether the node accepted it (the socket is closed again)."""
    communicator = FreeIMCommunicator(application, url)
    accepted, _ = await communicator.connect()
    await communicator.disconnect()
    return accepted


def lines(caplog, logger):
    return [record.getMessage() for record in caplog.records if record.name == logger]


async def test_connects_refusals_and_closes_are_logged_with_client_and_node_never_the_token(caplog, settings):
    caplog.set_level(logging.DEBUG, logger="freeim")
    settings.FREEIM = {"MAX_CONNECTIONS_PER_CLIENT": 1}
    spent = await im.aprev_connect_server("alice", base="ws://testserver")
    tokens = [token_of(spent)]
    async with connected(application, "bob") as bob:
        assert await attempt(spent)
        assert not await attempt(spent)  # used
        assert not await attempt("/ws?token=made-up-token")
        assert not await attempt("/ws")
        await get_backend().store.issue_token("elsewhere-token", {"client_id": "carol", "meta": "",
                                                                  "server": "other:6002"}, 10)
        assert not await attempt("/ws?token=elsewhere-token")
        tokens += ["made-up-token", "elsewhere-token"]
        second = await im.aprev_connect_server("bob", base="ws://testserver")
        tokens.append(token_of(second))
        one_too_many = FreeIMCommunicator(application, second)
        assert (await one_too_many.connect())[0]
        assert await one_too_many.receive_close() == 4006
        await bob.send_to(text_data="not json")
        assert await bob.receive_close() == 4001

    node = (await ensure_node()).name
    assert node == "local"
    connections = lines(caplog, "freeim.connections")
    assert f"freeim node {node}: client 'alice' connected; sockets here: 1 of its own, 2 in all" in connections
    assert f"freeim node {node}: client 'alice' disconnected with 1000; sockets here: 1 in all" in connections
    refused = f"freeim node {node}: refused a handshake from an unknown address: "  # the communicator has none
    assert [line.removeprefix(refused) for line in connections if line.startswith(refused)] == [
        "unknown, expired or used token", "unknown, expired or used token", "no token",
        "the token of client 'carol' is for node other:6002"]
    assert f"freeim node {node}: closing a socket of client 'bob' with 4006 (too many connections)" in connections
    assert f"freeim node {node}: closing a socket of client 'bob' with 4001 (protocol error)" in connections
    levels = {record.getMessage(): record.levelname for record in caplog.records}
    assert {levels[line] for line in connections if "connected" in line} == {"DEBUG"}
    assert {levels[line] for line in connections if "refused" in line or "closing" in line} == {"INFO"}
    for record in caplog.records:
        logged = record.getMessage() + (record.exc_text or "")
        assert not any(token in logged for token in tokens), logged


async def test_a_forced_offline_is_logged(caplog):
    caplog.set_level(logging.INFO, logger="freeim.connections")
    async with connected(application, 7) as terminal:
        await im.aforce_offline(7)
        assert await terminal.receive_close() == 4000
    assert lines(caplog, "freeim.connections") == ["freeim node local: closing a socket of client 7 with 4000 "
                                                   "(forced offline)"]


def failures(caplog):
    """The records of failing receivers: freeim's, and any Django would have added on ``django.dispatch``."""
    return [record for record in caplog.records if record.name in ("freeim.signals", "django.dispatch")]


@pytest.fixture
def broken_receivers():
    """A sync and an async receiver of every freeim signal, each raising."""

    def broken_sync(**kwargs):
        raise RuntimeError("sync receiver bug")

    async def broken_async(**kwargs):
        raise RuntimeError("async receiver bug")

    every = (signals.client_online, signals.client_offline, signals.message_stored)
    for signal in every:
        signal.connect(broken_sync)
        signal.connect(broken_async)
    yield
    for signal in every:
        signal.disconnect(broken_sync)
        signal.disconnect(broken_async)


def test_a_failing_receiver_of_an_events_worker_is_logged_once(caplog, broken_receivers):
    handle({"kind": "offline", "client": "42", "meta": "", "server": "a"})  # as a freeim_events worker does
    logged = failures(caplog)
    assert [(r.name, r.levelname, str(r.exc_info[1])) for r in logged] == [
        ("freeim.signals", "ERROR", "sync receiver bug"), ("freeim.signals", "ERROR", "async receiver bug")]
    assert logged[0].getMessage() == ("freeim: receiver broken_receivers.<locals>.broken_sync of client_offline "
                                      "raised RuntimeError('sync receiver bug')")


def test_a_failing_message_stored_receiver_is_logged_once_by_a_sync_send(caplog, broken_receivers):
    im.send_message(1, [2], "for later")  # 2 has no socket: message_stored
    assert [(r.name, str(r.exc_info[1])) for r in failures(caplog)] == [("freeim.signals", "sync receiver bug"),
                                                                         ("freeim.signals", "async receiver bug")]


async def test_a_failing_message_stored_receiver_is_logged_once_by_an_async_send(caplog, broken_receivers):
    await im.asend_message(1, [2], "for later")
    assert sorted((r.name, str(r.exc_info[1])) for r in failures(caplog)) == [("freeim.signals", "async receiver bug"),
                                                                               ("freeim.signals", "sync receiver bug")]


async def test_the_json_format_carries_each_events_facts(caplog):
    """Optional structured logs (freeim.logs.JSONFormatter): connect, disconnect, refusal, forced offline, a node's
    start and stop, each a JSON object with its event, node and client id."""
    caplog.set_level(logging.DEBUG, logger="freeim")
    async with connected(application, 7) as terminal:
        await im.aforce_offline(7)
        assert await terminal.receive_close() == 4000
    async with connected(application, "ann"):
        pass
    assert not await attempt("/ws?token=made-up-token")
    formatter = JSONFormatter()
    events = [json.loads(formatter.format(record)) for record in caplog.records if hasattr(record, "event")]
    facts = [{key: line[key] for key in ("event", "node", "client_id", "code", "reason") if key in line}
             for line in events]
    assert facts == [
        {"event": "start", "node": "local"},
        {"event": "connect", "node": "local", "client_id": 7},
        {"event": "force_offline", "node": "local", "client_id": 7, "code": 4000, "reason": "forced offline"},
        {"event": "disconnect", "node": "local", "client_id": 7, "code": 1000},  # the test client's answer
        {"event": "connect", "node": "local", "client_id": "ann"},
        {"event": "disconnect", "node": "local", "client_id": "ann", "code": 1000},
        {"event": "refuse", "node": "local", "reason": "unknown, expired or used token"}]
    assert all(line["time"].endswith("+00:00") and line["logger"].startswith("freeim") for line in events)
    plain = json.loads(formatter.format(logging.LogRecord("myapp", logging.INFO, __file__, 1, "hi %s", ("x",), None)))
    assert set(plain) == {"time", "level", "logger", "message"} and plain["message"] == "hi x"
