"""A real freeim cluster for tests: a private Redis, daphne nodes and ``freeim_events`` workers.

The processes are built exactly as ``demo_project/cluster.py`` builds them (its
``cluster_env``, ``daphne_command`` and ``events_command``); only the ports, the
database and the heartbeat TTL differ. The pytest process is the business side:
:meth:`Cluster.business_settings` is the ``FREEIM`` dict it runs with. Its Redis is
one server, or any topology with a URL that starts and stops (``RedisSentinel``).
The test modules share the helpers below: real WebSocket terminals, client ids by node,
waiting and reporting figures.

Also a pytest plugin (``pytest_plugins = ["tests.e2e.cluster"]``): a failing test that
used the ``cluster`` fixture gets the tails of every process log in its report.
PYTEST_DONT_REWRITE: it asserts nothing, and the test module imports it before
pytest registers it as a plugin (which would warn that it cannot rewrite it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from django.test import override_settings
from websockets.asyncio.client import ClientConnection, connect

from demo_project.cluster import ROOT, RedisServer, cluster_env, daphne_command, events_command, free_port
from freeim import im
from freeim.backends import get_backend
from freeim.backends.redis.keys import Keys
from freeim.backends.redis.pools import connect as connect_redis
from freeim.conf import server_base
from freeim.messaging.router import rendezvous
from tests.e2e.processes import answers, spawn, stop, tail, wait_until

#: Short, so a killed node is noticed in seconds; nodes beat every fifth of it.
HEARTBEAT_TTL = 2
#: Short, so a node stopped under terminals that do not come back (a test's) exits in seconds.
DRAIN_GRACE = 1
PREFIX = "freeim"
#: The settings module of the events workers: the demo's plus the recording receivers.
WORKER_SETTINGS = "tests.e2e.cluster_settings"
#: What ``freeim_events`` prints just before it starts reading.
WORKER_READY = "freeim events: consumer"
#: Seconds a terminal waits for its next frame.
FRAME_TIMEOUT = 5.0


class RedisTopology(Protocol):
    """What a cluster runs on: one ``RedisServer``, or a ``RedisSentinel``."""

    url: str

    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Node:
    """One daphne node: its name is ``127.0.0.1:<port>``, as in ``FREEIM_SERVERS``."""

    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Worker:
    """One ``freeim_events`` worker process."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


class Cluster:
    """A private Redis (``redis``: one server by default), ``size`` daphne nodes on free ports, and any events
    workers a test starts; every process with ``heartbeat_ttl``, every node with ``drain_grace``."""

    def __init__(self, size: int = 3, redis: RedisTopology | None = None, heartbeat_ttl: float = HEARTBEAT_TTL,
                 drain_grace: float = DRAIN_GRACE) -> None:
        self.redis = redis or RedisServer()  # not the session one: tests stop and restart this one
        self.heartbeat_ttl = heartbeat_ttl
        self.drain_grace = drain_grace
        self.directory = Path(tempfile.mkdtemp(prefix="freeim-cluster-"))
        self.database = self.directory / "db.sqlite3"
        self.nodes = [Node(free_port(), self.directory / f"node{index}.log") for index in range(size)]
        self.servers = [node.name for node in self.nodes]
        self.workers: list[Worker] = []
        self._worker_numbers = itertools.count()

    @functools.cached_property
    def store(self) -> Any:
        """This process's client of the cluster's Redis, built as freeim builds its clients (fails in seconds,
        reconnects after a restart, follows a failover), once Redis runs: a Redis Cluster's asks for its slots."""
        return connect_redis(self.redis.url)

    # Environment and settings
    def env(self, server: str | None = None, **extra: str) -> dict[str, str]:
        """A cluster process's environment: a node when ``server`` is given, else a business process."""
        return cluster_env(self.redis.url, self.servers, server, FREEIM_DEMO_DB=str(self.database),
                           FREEIM_HEARTBEAT_TTL=str(self.heartbeat_ttl), FREEIM_DRAIN_GRACE=str(self.drain_grace),
                           **extra)

    def business_settings(self) -> dict[str, Any]:
        """The ``FREEIM`` settings of a business process (no ``SERVER``): the pytest process's."""
        return {"REDIS_URL": self.redis.url, "SERVERS": list(self.servers), "HEARTBEAT_TTL": self.heartbeat_ttl,
                "REDIS_PREFIX": PREFIX}

    #: The key layout freeim writes (the pytest process reads the cluster's keys through it).
    keys = Keys(PREFIX)

    # Whole cluster
    def __enter__(self) -> Cluster:
        """Booted (stopped again if the boot fails half-way)."""
        try:
            self.boot()
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """A clean cluster (:meth:`reset`), with this process as its business side, until the block ends; the
        events workers started in it are stopped then."""
        self.reset()
        with override_settings(FREEIM=self.business_settings()):
            yield
        self.stop_workers()

    def boot(self) -> None:
        """Redis, the database (migrated once), then every node, started side by side."""
        self.redis.start()
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "--verbosity", "0"],
                              cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")
        self.start(*range(len(self.nodes)))

    def stop_all(self) -> None:
        try:
            self.stop_workers()
            for node in self.nodes:
                if node.process is not None:
                    stop(node.process, signal.SIGTERM)
        finally:  # a node that hung on SIGTERM (killed by stop) must not leave Redis running
            if "store" in self.__dict__:
                self.store.close()
            self.redis.stop()
            shutil.rmtree(self.directory, ignore_errors=True)  # a failing test's report has the log tails

    def reset(self) -> None:
        """Between tests: every node up, no workers, no freeim keys, every node registered again.

        Flushing is safe with live nodes: each notices at its next heartbeat that its
        registration is gone and writes itself back, which is what :meth:`wait_registered` waits for.
        """
        self.stop_workers()
        self.start(*[index for index, node in enumerate(self.nodes) if not node.running])
        keys = list(self.store.scan_iter(self.keys.everything(), count=1000))
        if keys:
            self.store.delete(*keys)
        for index in range(len(self.nodes)):
            self.wait_registered(index)

    # Nodes
    def start(self, *indexes: int) -> None:
        """Start nodes under their names and ports; return once each answers as a new process."""
        booted_as = {index: self.store.get(self.alive_key(index)) for index in indexes}
        for index in indexes:
            node = self.nodes[index]
            node.process = spawn(daphne_command(node.port), self.env(node.name), node.log)
        for index in indexes:
            self.wait_registered(index, not_boot=booted_as[index])

    def wait_registered(self, index: int, not_boot: str | None = None) -> None:
        """Until the node answers TCP and its alive key exists (with a boot id other than ``not_boot``)."""
        node = self.nodes[index]

        def registered() -> bool:
            boot = self.store.get(self.alive_key(index))
            return boot is not None and boot != not_boot and answers(node.port)

        wait_until(registered, node.process, node.log, f"node {node.name}")

    def kill(self, index: int) -> None:
        """SIGKILL: the node leaves its state in Redis for the reaper (or its own restart)."""
        stop(self.nodes[index].process, signal.SIGKILL)

    def terminate(self, index: int) -> None:
        """SIGTERM and wait: the node drains (its terminals have ``drain_grace`` seconds to come back elsewhere),
        then daphne's shutdown hook removes what presence it has left."""
        stop(self.nodes[index].process, signal.SIGTERM)

    def alive_key(self, index: int) -> str:
        return self.keys.node(self.servers[index], "alive")

    def inbox_length(self, index: int) -> int:
        return self.store.xlen(self.keys.node(self.servers[index], "inbox"))

    def index_of_url(self, url: str) -> int:
        """Which node a ``ws://host:port/...`` connect URL points to."""
        return next(index for index, server in enumerate(self.servers) if url.startswith(f"ws://{server}/"))

    # Events workers
    def start_worker(self, *args: str, **env: str) -> Worker:
        """A ``freeim_events`` worker with the recording receivers (``env``: ``FREEIM_TEST_*`` variables),
        returned once Django is set up and it starts reading."""
        log = self.directory / f"worker{next(self._worker_numbers)}.log"
        process = spawn([*events_command(), *args], self.env(DJANGO_SETTINGS_MODULE=WORKER_SETTINGS, **env), log)
        worker = Worker(process, log)
        self.workers.append(worker)
        wait_until(lambda: WORKER_READY in log.read_text(errors="replace"), process, log, f"worker {process.pid}")
        return worker

    def stop_workers(self) -> None:
        workers, self.workers = self.workers, []
        for worker in workers:
            stop(worker.process, signal.SIGTERM)

    def log_tails(self) -> str:
        logs = [node.log for node in self.nodes] + [worker.log for worker in self.workers]
        return "\n\n".join(f"--- {log.name}\n{tail(log)}" for log in logs)


class Terminals:
    """Real WebSocket clients, connected where ``prev_connect_server`` says; closed after the test."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.stack = stack

    async def open(self, client_id: str, meta: str = "", since: str | None = None) -> ClientConnection:
        url = await im.aprev_connect_server(client_id, meta, since=since)
        return await self._connect(url)

    async def open_on(self, server: str, client_id: str) -> ClientConnection:
        """Connect ``client_id`` to ``server`` whatever the router says (a device that reached another node)."""
        token = uuid.uuid4().hex
        await get_backend().store.issue_token(token, {"client_id": client_id, "meta": "", "server": server}, 10)
        return await self._connect(f"{server_base(server)}/ws?token={token}")

    async def _connect(self, url: str) -> ClientConnection:
        return await self.stack.enter_async_context(connect(url, proxy=None, close_timeout=2))


class Ids:
    """Client ids of this test only, chosen by the node that owns them while every node is alive."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.prefix = f"c{uuid.uuid4().hex[:6]}"
        self.numbers = itertools.count()

    def any(self, count: int) -> list[str]:
        return [f"{self.prefix}-{next(self.numbers)}" for _ in range(count)]

    def on(self, node: int, count: int = 1) -> list[str]:
        found: list[str] = []
        while len(found) < count:
            candidate = self.any(1)[0]
            if rendezvous(candidate, self.servers) == self.servers[node]:
                found.append(candidate)
        return found


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.05) -> float:
    """Seconds until ``check()`` is true; fail after ``timeout``."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{check.__name__} not true within {timeout} s")
        await asyncio.sleep(step)
    return time.monotonic() - started


def report(what: str, seconds: float) -> None:
    """Measured figures show with ``pytest -s`` (or ``-rP``)."""
    print(f"\nfreeim cluster: {what}: {seconds:.2f} s")


@pytest.fixture
async def terminals() -> AsyncIterator[Terminals]:
    """Real WebSocket clients, closed after the test."""
    async with AsyncExitStack() as stack:
        yield Terminals(stack)


@pytest.fixture
def ids(cluster: Cluster) -> Ids:
    """Client ids of this test only, on the nodes of the module's ``cluster``."""
    return Ids(cluster.servers)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if report.failed and isinstance(cluster, Cluster):
        report.sections.append(("cluster logs (tails)", cluster.log_tails()))
    return report
