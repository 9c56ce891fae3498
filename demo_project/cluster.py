"""Run the demo as a local 3-node cluster: ``python demo_project/cluster.py``.

Starts Redis on 127.0.0.1:6379 if none answers there (FREEIM_REDIS_URL overrides), migrates the demo
database, then runs three daphne nodes on ports 6001-6003, the business app
(the chat page and the REST API) on port 8000, and one ``freeim_events``
worker. Ctrl-C stops them all. Open http://127.0.0.1:8000/ in two tabs and pick a name in each (each tab
is its own user): each terminal's WebSocket goes straight to the node that owns its client id.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script, only demo_project/ is on the path
    sys.path.insert(0, str(ROOT))

from freeim.conf import DEFAULTS  # noqa: E402
from freeim.redis_url import parse as parse_redis_url  # noqa: E402

NODE_PORTS = (6001, 6002, 6003)
BUSINESS_PORT = 8000
REDIS_URL = os.environ.get("FREEIM_REDIS_URL", "redis://127.0.0.1:6379/0")
#: The processes inherit the environment, so the demo settings read the same value.
HANDSHAKE_TIMEOUT = float(os.environ.get("FREEIM_HANDSHAKE_TIMEOUT", DEFAULTS["HANDSHAKE_TIMEOUT"]))


def cluster_env(redis_url: str, servers: Sequence[str], server: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of one process of the cluster: a node when ``server`` is given, else business."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo_project.settings", "FREEIM_REDIS_URL": redis_url,
           "FREEIM_SERVERS": ",".join(servers), "PYTHONPATH": str(ROOT), **extra}
    env.pop("FREEIM_SERVER", None)
    if server:
        env["FREEIM_SERVER"] = server
    return env


def daphne_command(port: int, host: str = "127.0.0.1",
                   handshake_timeout: float = DEFAULTS["HANDSHAKE_TIMEOUT"]) -> list[str]:
    """daphne as a node wants it: its own port, a listen backlog of 1024 (deeper queues outlive
    their connect tokens in a storm), no 24 h socket cutoff, and ``handshake_timeout`` seconds for
    an HTTP request or a WebSocket handshake to finish: the node's ``FREEIM["HANDSHAKE_TIMEOUT"]``,
    so give the process the same value. A node that must absorb a reconnect storm of many thousand
    terminals needs more than the default (bench/storm.py gives 30), so its handshakes queue
    instead of failing."""
    timeout = str(math.ceil(handshake_timeout))  # daphne takes whole seconds
    return [sys.executable, "-m", "daphne", "-e", f"tcp:port={port}:interface={host}:backlog=1024",
            "--websocket_timeout", "-1", "--websocket_connect_timeout", timeout, "--http-timeout", timeout,
            "-v", "1", "demo_project.asgi:application"]


def events_command() -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), "freeim_events"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """``redis-server`` on a free loopback port, without persistence; start, stop, restart.

    ``options``: more command-line options (``--replicaof``, ``--sentinel``...); ``config``: the text of a
    configuration file of its own, written at the first start (a sentinel rewrites it with what it learns).
    """

    def __init__(self, port: int | None = None, options: Sequence[str] = (), config: str = "") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH: install it (Debian package redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = tempfile.mkdtemp(prefix="freeim-redis-")
        self.options = list(options)
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = Path(self.directory) / "redis.conf"
        if self.config and not config.exists():
            config.write_text(self.config)
        self.process = subprocess.Popen(
            [self.binary, *([str(config)] if self.config else []), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.directory, *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def restart(self, down_for: float = 0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def kill(self) -> None:
        """SIGKILL: what it had not sent its replicas yet is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def remove(self) -> None:
        """Stop it and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def wait_until(done: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Until ``done()`` (a Redis error counts as not yet); ``RuntimeError`` saying ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if done():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout} s")
        time.sleep(0.05)


class RedisSentinel:
    """A Redis master, ``replicas`` replicas of it and three sentinels watching it as :attr:`SERVICE`, all on
    free loopback ports: ``url`` (``redis+sentinel://``) names them. Two sentinels must find the master
    silent for ``down_after_ms`` to fail it over."""

    SERVICE = "freeim"

    def __init__(self, replicas: int = 1, down_after_ms: int = 1000) -> None:
        fast = ["--repl-diskless-sync-delay", "0"]  # any server may be the master: none waits to feed a replica
        master = RedisServer(options=fast)
        self.servers = [master, *(RedisServer(options=[*fast, "--replicaof", "127.0.0.1", str(master.port)])
                                  for _ in range(replicas))]
        config = (f"sentinel monitor {self.SERVICE} 127.0.0.1 {master.port} 2\n"
                  f"sentinel down-after-milliseconds {self.SERVICE} {down_after_ms}\n"
                  f"sentinel failover-timeout {self.SERVICE} 5000\n")
        self.sentinels = [RedisServer(options=["--sentinel"], config=config) for _ in range(3)]
        self.url = f"redis+sentinel://{','.join(f'127.0.0.1:{s.port}' for s in self.sentinels)}/{self.SERVICE}"

    def start(self) -> None:
        """The servers, then the sentinels; back once the replicas are in sync and each sentinel knows them and
        the other two sentinels (two must agree that the master is down, and elect one to fail it over)."""
        for server in [*self.servers, *self.sentinels]:
            server.start()
        self.wait_settled()

    def wait_settled(self) -> None:
        """Until every replica follows the master in sync and each sentinel knows them all and the other
        two: after a failover the sentinels tell the old master to follow the new one only some seconds later."""
        self.wait(self._settled, "settled topology (every replica in sync, every sentinel aware)")

    def stop(self) -> None:
        """The sentinels first (they would fail over a master being stopped), then the servers; no file stays."""
        for server in [*self.sentinels, *self.servers]:
            server.remove()

    def master(self) -> RedisServer:
        """The server the sentinels name the master now."""
        _host, port = self._ask(self.sentinels[0], "sentinel_get_master_addr_by_name", self.SERVICE)
        return next(server for server in self.servers if server.port == int(port))

    def replicas(self) -> list[RedisServer]:
        master = self.master()
        return [server for server in self.servers if server is not master]

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: a replica becomes the master though the master is fine (sentinels tell the old
        one to follow it some seconds later)."""
        self._ask(self.sentinels[0], "sentinel_failover", self.SERVICE)

    def wait_new_master(self, old: RedisServer) -> RedisServer:
        """Until every sentinel names a master other than ``old``, and it answers as one; that master."""
        def moved() -> bool:
            named = {int(self._ask(s, "sentinel_get_master_addr_by_name", self.SERVICE)[1]) for s in self.sentinels}
            return len(named) == 1 and old.port not in named and self._role(self.master()) == "master"

        self.wait(moved, "a new master")
        return self.master()

    def wait(self, done: Callable[[], bool], what: str, timeout: float = 30) -> None:
        wait_until(done, f"Redis Sentinel: no {what}", timeout)

    def _settled(self) -> bool:
        master = self.master()
        replication = self._ask(master, "info", "replication")
        in_sync = [replication[f"slave{n}"]["state"] for n in range(int(replication["connected_slaves"]))]
        if in_sync != ["online"] * (len(self.servers) - 1):
            return False
        states = [self._ask(sentinel, "sentinel_master", self.SERVICE) for sentinel in self.sentinels]
        return all(int(state["num-slaves"]) == len(self.servers) - 1 and int(state["num-other-sentinels"]) == 2
                   for state in states)

    def _role(self, server: RedisServer) -> str:
        return str(self._ask(server, "execute_command", "ROLE")[0])

    @staticmethod
    def _ask(server: RedisServer, method: str, *args: Any) -> Any:
        client = redis.Redis(port=server.port, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)
        try:
            return getattr(client, method)(*args)
        finally:
            client.close()


class RedisCluster:
    """A Redis Cluster of ``masters`` masters, each with ``replicas`` replicas, on free loopback ports: ``url``
    (``redis+cluster://``) names them. The slots are split evenly between the masters; a master silent for
    ``node_timeout_ms`` is failed over to its replica. A cluster of one master owns every slot, so a script that
    reaches into a second slot fails there as it would on many."""

    #: Slots of a Redis Cluster.
    SLOTS = 16384

    def __init__(self, masters: int = 1, replicas: int = 0, node_timeout_ms: int = 1000) -> None:
        binary = shutil.which("redis-server")  # none: RedisServer says how to install it
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout if binary else " v=7"
        if int(version.partition(" v=")[2].partition(".")[0] or 0) < 7:
            raise RuntimeError(f"a Redis Cluster here needs redis-server 7.0 or later (ADDSLOTSRANGE, cluster-port), "
                               f"not {version.strip()}")
        #: Each server's cluster bus port: a free one, as its own port + 10,000 may not exist.
        self.bus_ports: dict[int, int] = {}

        def server() -> RedisServer:
            bus = free_port()
            made = RedisServer(options=["--cluster-enabled", "yes", "--cluster-port", str(bus),
                                        "--cluster-node-timeout", str(node_timeout_ms),
                                        "--cluster-require-full-coverage", "no", "--repl-diskless-sync-delay", "0"])
            self.bus_ports[made.port] = bus
            return made

        self.masters = [server() for _ in range(masters)]
        self.replicas = [[server() for _ in range(replicas)] for _ in range(masters)]
        self.servers = [*self.masters, *(replica for shard in self.replicas for replica in shard)]
        self.url = f"redis+cluster://{','.join(f'127.0.0.1:{server.port}' for server in self.servers)}"

    def start(self) -> None:
        """Each master takes its share of the slots, they all meet, each replica follows its master; back once every
        node sees the cluster whole (``cluster_state:ok``) and every replica is in sync."""
        for server in self.servers:
            server.start()
        for index, master in enumerate(self.masters):
            first, last = index * self.SLOTS // len(self.masters), (index + 1) * self.SLOTS // len(self.masters) - 1
            self.ask(master, "CLUSTER", "ADDSLOTSRANGE", first, last)
            self.ask(master, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)  # distinct epochs: no collision to settle
        for server in self.servers[1:]:
            self.ask(self.servers[0], "CLUSTER", "MEET", "127.0.0.1", server.port, self.bus_ports[server.port])
        wait_until(lambda: all(len(self._nodes(server)) == len(self.servers) for server in self.servers),
                   "Redis Cluster: not every node met every other")
        for master, shard in zip(self.masters, self.replicas, strict=True):
            for replica in shard:
                self.ask(replica, "CLUSTER", "REPLICATE", self.node_id(master))
        self.wait_settled()

    def wait_settled(self) -> None:
        """Until every running node says ``cluster_state:ok`` and every running replica's link to its master is up."""
        wait_until(self._settled, "Redis Cluster: not settled (state ok everywhere, every replica in sync)")

    def stop(self) -> None:
        """Every server stopped; no file stays."""
        for server in self.servers:
            server.remove()

    def master_of(self, key: str) -> RedisServer:
        """The running server that owns ``key``'s slot now."""
        slot = int(self.ask(self._running()[0], "CLUSTER", "KEYSLOT", key))
        for first, last, (_host, port, *_id), *_replicas in self.ask(self._running()[0], "CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return next(server for server in self.servers if server.port == int(port))
        raise RuntimeError(f"no master owns slot {slot}")

    def move_slot(self, key: str) -> int:
        """Move ``key``'s slot, every key in it, to another master while clients use it, as ``redis-cli --cluster
        reshard`` does: the slot marked importing and migrating, its keys migrated a hundred at a time (a client meets
        ``ASK`` for those gone, ``TRYAGAIN`` for a call on some of each), then its new master told to every master
        (``MOVED``). Returns how many keys moved."""
        source = self.master_of(key)
        target = next(master for master in self.running_masters() if master is not source)
        slot = self.ask(source, "CLUSTER", "KEYSLOT", key)
        self.ask(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source))
        self.ask(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target))
        moved = 0
        while keys := self.ask(source, "CLUSTER", "GETKEYSINSLOT", slot, 100):
            self.ask(source, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
        for master in self.running_masters():
            self.ask(master, "CLUSTER", "SETSLOT", slot, "NODE", self.node_id(target))
        return moved

    def running_masters(self) -> list[RedisServer]:
        """The servers running as masters now (a replica promoted in a failover among them)."""
        return [server for server in self._running() if self.role(server) == "master"]

    def node_id(self, server: RedisServer) -> str:
        return str(self.ask(server, "CLUSTER", "MYID"))

    def role(self, server: RedisServer) -> str:
        return str(self.ask(server, "ROLE")[0])

    def _settled(self) -> bool:
        for server in self._running():
            if "cluster_state:ok" not in self.ask(server, "CLUSTER", "INFO"):
                return False
            if self.role(server) == "slave" and self.ask(server, "INFO", "replication").get(
                    "master_link_status") != "up":
                return False
        return True

    def _running(self) -> list[RedisServer]:
        return [server for server in self.servers if server.process is not None]

    def _nodes(self, server: RedisServer) -> list[str]:
        return [line for line in self.ask(server, "CLUSTER", "NODES").splitlines() if line]

    @staticmethod
    def ask(server: RedisServer, *command: Any) -> Any:
        """``command``'s reply from ``server``, as redis-py gives it (INFO's parsed)."""
        client = redis.Redis(port=server.port, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)
        try:
            return client.execute_command(*command)
        finally:
            client.close()


def ensure_redis(url: str) -> RedisServer | None:
    """Start redis-server for ``url``'s port unless something already answers there (or it names Sentinel's
    master, which the sentinels find, or a Redis Cluster, which runs on its own)."""
    if not isinstance(parse_redis_url(url), str):
        return None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return None
    except redis.ConnectionError:
        pass
    server = RedisServer(port=int(redis.connection.parse_url(url).get("port", 6379)))
    server.start()
    return server


def main() -> None:
    servers = [f"127.0.0.1:{port}" for port in NODE_PORTS]
    redis_server = ensure_redis(REDIS_URL)
    business = cluster_env(REDIS_URL, servers)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--verbosity", "0"], env=business,
                   check=True, cwd=ROOT)
    processes = [subprocess.Popen(daphne_command(port, handshake_timeout=HANDSHAKE_TIMEOUT),
                                  env=cluster_env(REDIS_URL, servers, server), cwd=ROOT)
                 for port, server in zip(NODE_PORTS, servers, strict=True)]
    processes.append(subprocess.Popen(daphne_command(BUSINESS_PORT, handshake_timeout=HANDSHAKE_TIMEOUT), env=business,
                                      cwd=ROOT))
    processes.append(subprocess.Popen(events_command(), env=business, cwd=ROOT))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the children on SIGTERM as on Ctrl-C
    print(f"freeim cluster: nodes {', '.join(servers)}; chat at http://127.0.0.1:{BUSINESS_PORT}/ ; Ctrl-C stops")
    try:
        running = set(processes)
        while True:  # a node that dies is reported, not fatal: that is what the cluster is for
            for process in [p for p in running if p.poll() is not None]:
                print(f"freeim cluster: {' '.join(process.args[-3:])} exited with {process.returncode}")
                running.discard(process)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(10)
        if redis_server is not None:
            redis_server.stop()


if __name__ == "__main__":
    main()
