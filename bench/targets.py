"""The systems under test, each started fresh per scenario on a private redis-server.

:class:`FreeIM`: ``nodes`` daphne nodes plus one business process serving the
REST connect endpoint (``bench.freeim_site``), exactly as ``demo_project/cluster.py``
builds a cluster. The peers it is measured beside, all fed through the same Redis:
:class:`Channels`: ``nodes`` daphne processes of the plain Channels baseline
(``bench.baseline``) sharing one channels_redis layer; :class:`Bare`: ``nodes``
bare ``websockets`` servers fed by Redis PUBLISH (``bench.peers.bare_server``);
:class:`SocketIO`: ``nodes`` Socket.IO 4 servers with the Redis adapter
(``bench/peers/socketio``, Node.js).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import redis

from bench import peers
from demo_project.cluster import ROOT, RedisServer, cluster_env, daphne_command, free_port
from freeim.backends.redis.keys import PARTITIONS, Keys
from freeim.node.probe import PROBE_ENV
from tests.e2e.processes import answers, spawn, stop, tail, wait_until

HOST = "127.0.0.1"
FREEIM_SETTINGS = "bench.freeim_site.settings"
#: The keys of the freeim cluster under test (its default prefix).
KEYS = Keys("freeim")
BASELINE_APP = "bench.baseline.asgi:application"


def daphne(port: int, app: str | None = None) -> list[str]:
    """The demo cluster's daphne command (``demo_project.cluster.daphne_command``) without access logs
    (``-v 0``, as in the reference harness: one log line per connect costs the server) and serving ``app``."""
    command = daphne_command(port)
    command[command.index("-v") + 1] = "0"
    if app is not None:
        command[-1] = app
    return command


class Target:
    """Servers of one system: start, address them, read their logs, stop everything."""

    kind = ""

    def __init__(self, nodes: int) -> None:
        self.redis = RedisServer()
        self.ports = [free_port() for _ in range(nodes)]
        self.logs = Path(tempfile.mkdtemp(prefix=f"freeim-bench-{self.kind}-"))
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.others: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def node_pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def node_log(self, index: int) -> Path:
        return self.logs / f"node{index}.log"

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(HOST, port) for port in self.ports]

    def probe_file(self, index: int) -> Path:
        """Where node ``index`` writes its loop probe (``FREEIM_LOOP_PROBE``, :mod:`bench.loopprobe`)."""
        return self.logs / f"probe{index}.jsonl"

    def start(self) -> None:
        self.redis.start()
        for index, port in enumerate(self.ports):
            self.nodes.append(spawn(self.node_command(port), self.node_env(index), self.node_log(index)))
        for index, (node, port) in enumerate(zip(self.nodes, self.ports, strict=True)):
            wait_until(lambda p=port: answers(p), node, self.node_log(index), f"{self.kind} node on {port}")

    def stop(self) -> None:
        """Stop every process this target started, whatever state they are in."""
        for process in [*self.others.values(), *self.nodes]:
            try:
                stop(process, signal.SIGTERM)
            except RuntimeError as error:  # killed after the timeout: carry on with the others
                print(f"  ({error})")
        self.redis.stop()
        shutil.rmtree(self.redis.directory, ignore_errors=True)

    def remove_logs(self) -> None:
        shutil.rmtree(self.logs, ignore_errors=True)

    def pids(self) -> dict[str, int]:
        """Every server-side process by role, for CPU figures."""
        found = {f"node{i}": node.pid for i, node in enumerate(self.nodes)}
        found.update({name: process.pid for name, process in self.others.items()})
        if self.redis.process is not None:
            found["redis"] = self.redis.process.pid
        return found

    def node_command(self, port: int) -> list[str]:
        raise NotImplementedError

    def node_env(self, index: int) -> dict[str, str]:
        raise NotImplementedError

    def online(self) -> int | None:
        """Clients online according to the server's own store (None if it keeps none)."""
        return None

    def client_target(self, chans: list[str] | None = None) -> dict[str, Any]:
        """What a load generator needs to connect a client."""
        raise NotImplementedError

    def sender_target(self) -> dict[str, Any]:
        """What the sender process needs: the kind and its environment."""
        raise NotImplementedError

    def redis_commands(self) -> int:
        """Commands the private redis-server has processed so far (its INFO stats)."""
        return int(redis.Redis.from_url(self.redis.url).info("stats")["total_commands_processed"])


class FreeIM(Target):
    kind = "freeim"

    def __init__(self, nodes: int) -> None:
        super().__init__(nodes)
        self.servers = [f"{HOST}:{port}" for port in self.ports]
        self.api_port = free_port()
        self.secret = secrets.token_hex(16)

    def env(self, server: str | None = None, **extra: str) -> dict[str, str]:
        """A node's environment (``server`` one of ``servers``), else a business process's."""
        return cluster_env(self.redis.url, self.servers, server, DJANGO_SETTINGS_MODULE=FREEIM_SETTINGS,
                           BENCH_SECRET=self.secret, **extra)

    def node_command(self, port: int) -> list[str]:
        return daphne(port)

    def node_env(self, index: int) -> dict[str, str]:
        return self.env(self.servers[index], **{PROBE_ENV: str(self.probe_file(index))})

    def start(self) -> None:
        super().start()
        log = self.logs / "business.log"
        business = self.others["business"] = spawn(daphne(self.api_port), self.env(), log)
        wait_until(lambda: answers(self.api_port), business, log, "freeim business app")
        store = redis.Redis.from_url(self.redis.url)
        try:  # connect/ routes over the nodes alive in Redis: wait until every node registered
            wait_until(lambda: store.zcard(KEYS.shared("nodes")) == len(self.nodes), business, log,
                       "node registration")
        finally:
            store.close()

    def online(self) -> int | None:
        store = redis.Redis.from_url(self.redis.url)
        try:
            pipe = store.pipeline(transaction=False)
            for part in range(PARTITIONS):
                pipe.scard(KEYS.clients(part, "online"))
            return sum(pipe.execute())
        finally:
            store.close()

    def client_target(self, chans: list[str] | None = None) -> dict[str, Any]:
        return {"kind": "freeim", "api": (HOST, self.api_port, "/im/connect/"), "secret": self.secret}

    def sender_target(self) -> dict[str, Any]:
        return {"kind": "freeim", "env": self.env()}


class Channels(Target):
    kind = "channels"

    def __init__(self, nodes: int, layer: str = "core") -> None:
        super().__init__(nodes)
        self.layer = layer

    def env(self, **extra: str) -> dict[str, str]:
        return cluster_env(self.redis.url, [], DJANGO_SETTINGS_MODULE="bench.baseline.settings",
                           BENCH_REDIS_URL=self.redis.url, BENCH_LAYER=self.layer, **extra)

    def node_command(self, port: int) -> list[str]:
        return daphne(port, BASELINE_APP)

    def node_env(self, index: int) -> dict[str, str]:
        return self.env(**{PROBE_ENV: str(self.probe_file(index))})

    def client_target(self, chans: list[str] | None = None) -> dict[str, Any]:
        return {"kind": self.kind, "nodes": self.addresses, "path": ws_path(chans)}

    def sender_target(self) -> dict[str, Any]:
        return {"kind": "channels", "env": self.env()}


class Bare(Target):
    """Bare ``websockets`` servers, one process per node, fed by Redis PUBLISH (``bench.peers.bare_server``)."""

    kind = "bare"

    def node_command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "bench.peers.bare_server", str(port), self.redis.url]

    def node_env(self, index: int) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT), PROBE_ENV: str(self.probe_file(index))}

    def client_target(self, chans: list[str] | None = None) -> dict[str, Any]:
        return {"kind": self.kind, "nodes": self.addresses, "path": ws_path(chans)}

    def sender_target(self) -> dict[str, Any]:
        return {"kind": self.kind, "redis": self.redis.url}


class SocketIO(Target):
    """Socket.IO 4 servers with the Redis adapter, one node process each; the business side is the
    Redis emitter (``bench/peers/socketio``). Needs node and npm: :func:`bench.peers.install_socketio`."""

    kind = "socketio"

    def start(self) -> None:
        missing = peers.install_socketio()
        if missing:
            raise RuntimeError(f"the Socket.IO peer cannot run: {missing}")
        super().start()

    def node_command(self, port: int) -> list[str]:
        return ["node", str(peers.SOCKETIO / "server.js"), str(port), self.redis.url]

    def node_env(self, index: int) -> dict[str, str]:
        return dict(os.environ)

    def client_target(self, chans: list[str] | None = None) -> dict[str, Any]:
        path = "/socket.io/?EIO=4&transport=websocket&id={id}" + (f"&chans={','.join(chans)}" if chans else "")
        return {"kind": self.kind, "nodes": self.addresses, "path": path}

    def sender_target(self) -> dict[str, Any]:
        return {"kind": self.kind, "emitter": ["node", str(peers.SOCKETIO / "emitter.js"), self.redis.url]}


KINDS: dict[str, type[Target]] = {"freeim": FreeIM, "channels": Channels, "bare": Bare, "socketio": SocketIO}


def ws_path(chans: list[str] | None) -> str:
    """A plain WebSocket client's path, ``{id}`` standing for its id: ``/ws/<id>``, its chans in the query."""
    return "/ws/{id}" + (f"?chans={','.join(chans)}" if chans else "")


def make(kind: str, nodes: int, layer: str = "core") -> Target:
    if kind not in KINDS:
        raise ValueError(f"unknown target {kind!r}; choose from {', '.join(KINDS)}")
    return Channels(nodes, layer) if kind == "channels" else KINDS[kind](nodes)


def log_tails(target: Target) -> str:
    return "\n".join(f"--- {path.name}\n{tail(path, 15)}" for path in sorted(target.logs.glob("*.log")))
