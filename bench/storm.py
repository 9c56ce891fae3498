"""A reconnect storm against a local freeim cluster, with real processes and sockets.

    python bench/storm.py [--clients 20000] [--nodes 3] [--procs 4] [--hold 5]

Starts a private redis-server and ``--nodes`` daphne nodes, then ``--procs``
load processes open ``--clients`` sockets all at once, each through the real
connect flow (a fresh one-time token per attempt) and retrying with jittered
backoff like ``freeim.js``. Then it kills one node with SIGKILL: its clients
reconnect at once to the others. Prints, per phase, the time until every
client was connected, the attempts that failed, and whether presence in Redis
was exact; at the end, that presence is empty again once every client left.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo_project.cluster import RedisServer, cluster_env, daphne_command, free_port  # noqa: E402
from freeim.conf import DEFAULTS  # noqa: E402

#: freeim.js's reconnect policy: wait d/2..d, d doubling from 0.5 s up to 15 s; a browser
#: WebSocket has no open timeout of its own, so a generous one stands in for it.
BACKOFF_MIN, BACKOFF_MAX = 0.5, 15.0
OPEN_TIMEOUT = 60.0
#: The benchmark's settings (no database), with freeim's default token lifetime: a token that
#: waits in a node's listen queue longer than that is refused, as in production.
#: Handshakes queue behind each other in a storm of 20,000: they get 30 s (the default 10 is for a
#: node under normal load), in daphne's command and in the node's own settings alike.
HANDSHAKE_TIMEOUT = 30
SETTINGS = {"DJANGO_SETTINGS_MODULE": "bench.freeim_site.settings", "FREEIM_TOKEN_TTL": str(DEFAULTS["TOKEN_TTL"]),
            "FREEIM_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT)}


def setup_django(redis_url: str, servers: list[str]) -> None:
    os.environ.update(cluster_env(redis_url, servers, **SETTINGS))
    import django

    django.setup()


def backoff(attempt: int) -> float:
    """freeim.js's delay before reconnect attempt ``attempt`` (0-based)."""
    ceiling = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** attempt)
    return ceiling / 2 + random.random() * ceiling / 2


def load(client_ids: list[int], redis_url: str, servers: list[str], report: multiprocessing.Queue,
         stop: multiprocessing.Event) -> None:
    """One load process: keep every client connected until ``stop``; report each (re)connect."""
    setup_django(redis_url, servers)
    from websockets.asyncio.client import connect

    from freeim import im

    api = asyncio.Semaphore(50)  # the business API serves so many connect requests at once

    async def client(client_id: int, stopping: asyncio.Future[None]) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                async with api:
                    url = await im.aprev_connect_server(client_id)
                socket = await connect(url, open_timeout=OPEN_TIMEOUT, ping_interval=None, close_timeout=1)
            except Exception as error:
                report.put(("failed", client_id, time.time(), f"{type(error).__name__}: {str(error)[:60]}"))
                await asyncio.sleep(backoff(attempt))
                attempt += 1
                continue
            attempt = 0
            report.put(("connected", client_id, time.time(), ""))
            closed = asyncio.ensure_future(socket.wait_closed())
            await asyncio.wait([closed, stopping], return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            await socket.close()
            await asyncio.sleep(backoff(0))  # a dropped terminal reconnects after 0.25-0.5 s

    async def watch_stop() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.5)

    async def main() -> None:
        stopping = asyncio.ensure_future(watch_stop())  # one poller, not one per client
        await asyncio.gather(*(client(c, stopping) for c in client_ids))

    asyncio.run(main())


def wait_for_all(report: multiprocessing.Queue, expected: set[int], since: float,
                 give_up: float) -> tuple[float, int]:
    """Until every client of ``expected`` connected after ``since``: (seconds, failed attempts).

    Prints progress every 10 s, so a storm that does not settle shows where it stalls; after
    ``give_up`` seconds it raises.
    """
    failed = 0
    reasons: dict[str, int] = {}
    waiting = set(expected)
    shown = time.time()
    while waiting:
        if time.time() - since > give_up:
            raise SystemExit(f"not settled after {give_up:.0f} s: {len(waiting)} of {len(expected)} still "
                             f"waiting; failed attempts by cause: {reasons}")
        event, client_id, when, error = report.get(timeout=give_up)
        if event == "failed":
            failed += 1
            cause = error
            reasons[cause] = reasons.get(cause, 0) + 1
        elif when >= since:
            waiting.discard(client_id)
        if time.time() - shown >= 10:
            shown = time.time()
            top = ", ".join(f"{cause} {count}" for cause, count in sorted(reasons.items(), key=lambda r: -r[1])[:3])
            print(f"  {shown - since:5.0f} s: {len(expected) - len(waiting)} of {len(expected)} connected, "
                  f"{failed} failed attempts ({top})", flush=True)
    if reasons:
        print("failed attempts by cause:", reasons)
    return time.time() - since, failed


def presence(servers: list[str]) -> str:
    """Online clients in Redis, and per node the clients recorded there (through the helper)."""
    from freeim import im

    online = im.get_client_list_by_online()
    per_node = dict.fromkeys(servers, 0)
    for nodes in im.get_client_nodes(online).values():
        for node in nodes:
            per_node[node] = per_node.get(node, 0) + 1
    return f"online {len(online)}, per node {list(per_node.values())}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--hold", type=float, default=5)
    parser.add_argument("--give-up", type=float, default=900, help="seconds a phase may take")
    options = parser.parse_args()

    redis_server = RedisServer()
    redis_server.start()
    ports = [free_port() for _ in range(options.nodes)]
    servers = [f"127.0.0.1:{port}" for port in ports]
    logs = Path(tempfile.mkdtemp(prefix="freeim-storm-"))
    nodes = [subprocess.Popen(daphne_command(port, handshake_timeout=HANDSHAKE_TIMEOUT),
                              env=cluster_env(redis_server.url, servers, server, **SETTINGS),
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(logs / f"{port}.log").open("wb"))
             for port, server in zip(ports, servers, strict=True)]
    time.sleep(3)
    setup_django(redis_server.url, servers)
    from freeim import im
    from freeim.messaging import router

    report, stop = multiprocessing.Queue(), multiprocessing.Event()
    ids = list(range(1, options.clients + 1))
    loaders = [multiprocessing.Process(target=load, args=(ids[i::options.procs], redis_server.url, servers, report,
                                                          stop)) for i in range(options.procs)]
    try:
        started = time.time()
        for process in loaders:
            process.start()
        took, failed = wait_for_all(report, set(ids), started, options.give_up)
        time.sleep(1)
        online = len(im.get_client_list_by_online())
        print(f"storm: {options.clients} clients on {options.nodes} nodes connected in {took:.1f} s "
              f"({options.clients / took:,.0f}/s), {failed} failed attempts retried; online in Redis: {online}; "
              f"node RSS MB: {', '.join(f'{rss_mb(n.pid):.0f}' for n in nodes)}")
        time.sleep(options.hold)

        victim = nodes[0]
        orphans = {c for c in ids if router.rendezvous(c, servers) == servers[0]}
        killed_at = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        took, failed = wait_for_all(report, orphans, killed_at, options.give_up)
        time.sleep(1)
        online = len(im.get_client_list_by_online())
        print(f"reconnect storm: node {servers[0]} killed; its {len(orphans)} clients reconnected to the others in "
              f"{took:.1f} s, {failed} failed attempts retried; online in Redis: {online} (reaper: "
              f"{'done' if online == options.clients else 'stale entries still there'})")
        for _ in range(6):
            print("  presence:", presence(servers), flush=True)
            time.sleep(5)
    finally:
        stop.set()
        for process in loaders:
            process.join(30)
        left_at = time.time()
        while (online := len(im.get_client_list_by_online())) and time.time() - left_at < 60:
            time.sleep(1)
        print(f"all clients left: online in Redis {time.time() - left_at:.0f} s later: {online}")
        for node in nodes:
            node.terminate()
            node.wait(10)
        redis_server.stop()


if __name__ == "__main__":
    main()
