"""Every ASGI server the README names runs a node: daphne (reactor hooks), uvicorn and hypercorn (ASGI lifespan).

Each serves the demo project as a cluster node on a private Redis, so what its start and its shutdown did can
be read from outside: the node registers when the server starts (before any socket), a message sent by the
business side (this process) arrives over a real WebSocket, and a SIGTERM drains the node: its socket is closed
with 4007 at once, and the node's presence is removed once its grace has passed without the terminal coming back
(the heartbeat TTL is a minute, so no reaper does it). The node logs which write path it uses.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.test import override_settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from demo_project.cluster import ROOT, RedisServer, cluster_env, daphne_command, free_port
from freeim import im
from freeim.backends.redis.keys import Keys
from freeim.protocol import CloseCode
from freeim.testing import eventually
from tests.e2e.processes import answers, spawn, stop, tail, wait_until

HEARTBEAT_TTL = 60  # no node is reaped during a test: only its own shutdown removes its presence
DRAIN_GRACE = 1

COMMANDS: dict[str, Callable[[int], list[str]]] = {
    "daphne": daphne_command,
    "uvicorn": lambda port: [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                             "--lifespan", "on", "--no-access-log", "demo_project.asgi:application"],
    "hypercorn": lambda port: [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}",
                               "--graceful-timeout", "2", "--workers", "0", "demo_project.asgi:application"],
}
WRITE_PATHS = {"daphne": "frames written to daphne's Twisted transports directly",
               "uvicorn": "frames sent through ASGI send", "hypercorn": "frames sent through ASGI send"}


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ready(name: str) -> bool:
    try:
        with NO_PROXY.open(f"http://{name}/freeim/health/ready", timeout=5) as answer:
            return bool(json.loads(answer.read())["ready"])
    except urllib.error.HTTPError as refused:  # 503: not ready (yet)
        assert refused.code == 503, refused
        return False


@pytest.fixture(scope="module")
def database() -> Iterator[Path]:
    """The demo's database, migrated once (the node's auto-join reads freeim.groups' tables)."""
    directory = Path(tempfile.mkdtemp(prefix="freeim-servers-"))
    path = directory / "db.sqlite3"
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "--verbosity", "0"],
                          cwd=ROOT, env={**cluster_env("redis://unused", []), "FREEIM_DEMO_DB": str(path)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    yield path
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("server", sorted(COMMANDS))
async def test_a_node_under_each_server(server: str, database: Path, private_redis: RedisServer,
                                        tmp_path: Path) -> None:
    """The node under test, and a peer under the same server for its terminal to move to when it drains (a node
    with no other node to send its terminals to stops without draining)."""
    ports = free_port(), free_port()
    name, peer = names = [f"127.0.0.1:{port}" for port in ports]
    logs = [tmp_path / f"{server}-{index}.log" for index in range(2)]
    log = logs[0]
    store = redis.Redis.from_url(private_redis.url, decode_responses=True)
    alive = Keys("freeim").node(name, "alive")
    settings = {"FREEIM_DEMO_DB": str(database), "FREEIM_HEARTBEAT_TTL": str(HEARTBEAT_TTL),
                "FREEIM_DRAIN_GRACE": str(DRAIN_GRACE)}
    processes = [spawn(COMMANDS[server](port), cluster_env(private_redis.url, names, node, **settings), node_log)
                 for port, node, node_log in zip(ports, names, logs, strict=True)]
    process = processes[0]
    try:
        # The node started with the server, not with a first socket. It registers before it logs its start line
        # (a loaded machine can run a test step in between), so the line is waited for like the rest.
        for port, node, node_log, started in zip(ports, names, logs, processes, strict=True):
            line = f"freeim node {node} started: {WRITE_PATHS[server]}"
            wait_until(lambda p=port, n=node, f=node_log, s=line: answers(p) and s in f.read_text()
                       and store.exists(Keys("freeim").node(n, "alive")) == 1, started, node_log, f"{server} node")
        # The load balancer's probe, polled as one polls it (a loop busy with the start is not ready yet)...
        wait_until(lambda: ready(name), process, log, f"{server} node ready")
        with NO_PROXY.open(f"http://{name}/freeim/metrics", timeout=5) as scrape:  # ...and Prometheus's scrape
            assert f'freeim_node_connections{{node="{name}"}} 0.0' in scrape.read().decode()

        business = {"REDIS_URL": private_redis.url, "SERVERS": names, "HEARTBEAT_TTL": HEARTBEAT_TTL}
        with override_settings(FREEIM=business):
            url, node = await im.aconnect_ticket(1, avoid=peer)
            assert node == name
            async with connect(url) as terminal:
                await eventually(lambda: im.ahas_online(1))
                sent = await im.asend_message(2, [1], {"text": f"hi over {server}"})
                frame = json.loads(await terminal.recv())
                assert (frame["id"], frame["data"]) == (sent, {"text": f"hi over {server}"})

                began = time.monotonic()
                stopping = asyncio.create_task(asyncio.to_thread(stop, process, signal.SIGTERM))  # the socket open
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(terminal.recv(), 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.NODE_DRAINING
                assert (await im.aconnect_ticket(3))[1] == peer  # connect/ leaves the draining node out
                await stopping
                assert time.monotonic() - began >= DRAIN_GRACE, "the node did not wait for its terminal to come back"
                # uvicorn re-raises the signal once it has shut down cleanly (it exits "by" SIGTERM)
                assert process.returncode in (0, -signal.SIGTERM), tail(log)
                assert not await im.ahas_online(1)  # removed by the shutdown, not by a reaper
                assert store.exists(alive) == 0
        assert f"freeim node {name} stopped" in log.read_text()
    finally:
        for started in processes:
            stop(started, signal.SIGKILL)
        store.close()
