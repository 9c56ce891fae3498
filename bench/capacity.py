"""What each operation costs Redis, and how many Redis shards a deployment needs: the capacity model.

    python bench/capacity.py [--repeat 2000]

Starts a redis-server of its own and runs each operation ``--repeat`` times through freeim's own code (the helper
API, the store, the node registry), on the Redis backend: a connect (token, handshake, presence), a connect that
auto-joins 5 chans, a disconnect (without chans, and out of 5 chans), a private message, a chan message to members
on 3 nodes, a heartbeat, and the reap of a dead node's clients. For each it prints the round trips freeim makes
(counted where every step is sent, :meth:`freeim.backends.redis.client.Connections.issue`), the commands Redis
runs (``INFO commandstats``: a script's own commands included) and Redis's CPU per operation (``INFO cpu``).
Then the model: Redis CPU per second for 1 M and 10 M connections at 1 % reconnects a minute and 10 private
messages a second per 1,000 connections (the load counted in ``research/scale-out.md``), and the shards that
keeps at half a core each.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django  # noqa: E402
import redis  # noqa: E402
from django.conf import settings  # noqa: E402

from demo_project.cluster import RedisServer  # noqa: E402

#: Chans a client auto-joins in the connect that joins chans, and leaves in the disconnect that leaves them.
CHANS = 5
#: Members of the chan a chan message goes to, and the nodes they are on.
CHAN_MEMBERS, CHAN_NODES = 30, 3
#: Connections per node (a node of the model), and the clients of the node the reap takes off.
PER_NODE = 20_000
REAPED = 1_000
#: Messages per call of the batched sends.
BATCH = 100
#: The load of the model: reconnects per connection per minute, private messages a second per 1,000 connections.
CHURN_PER_MINUTE = 0.01
MESSAGES_PER_THOUSAND = 10
#: The share of a core each shard is planned at.
SHARD_LOAD = 0.5


def configure(url: str) -> None:
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "channels", "freeim"],
        DATABASES={}, FREEIM={"REDIS_URL": url, "SERVERS": ["n0", "n1", "n2"], "HEARTBEAT_TTL": 6},
        CHANNEL_LAYERS={}, USE_TZ=True)
    django.setup()


class Counted:
    """Round trips, Redis commands and Redis CPU of what runs within."""

    def __init__(self, store: redis.Redis) -> None:
        self.store = store
        self.round_trips = 0

    def snapshot(self) -> tuple[int, Counter[str], float]:
        stats = self.store.info("commandstats")
        cpu = self.store.info("cpu")
        calls = Counter({name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()})
        return self.round_trips, calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def measure(self, what: Callable[[int], Any], repeat: int) -> dict[str, Any]:
        trips, calls, cpu = self.snapshot()
        for n in range(repeat):
            what(n)
        trips_after, calls_after, cpu_after = self.snapshot()
        calls_after.subtract(calls)
        calls_after["info"] -= 2  # the snapshots' own
        commands = {name: count / repeat for name, count in calls_after.items() if count > 0}
        return {"round_trips": (trips_after - trips) / repeat, "commands": sum(commands.values()),
                "by_command": commands, "cpu_us": (cpu_after - cpu) / repeat * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    options = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        configure(server.url)
        report(run(server.url, options.repeat))
    finally:
        server.stop()


def run(url: str, repeat: int) -> dict[str, dict[str, Any]]:
    from freeim import im
    from freeim.backends import get_backend
    from freeim.backends.contract import run_blocking
    from freeim.backends.redis.client import Connections

    store = redis.Redis.from_url(url, decode_responses=True)
    counted = Counted(store)
    issue = Connections.issue

    def counting(self: Connections, client: Any, step: Any) -> Any:
        counted.round_trips += 1
        return issue(self, client, step)

    Connections.issue = counting  # type: ignore[method-assign]
    backend = get_backend().blocking()
    assert backend is not None
    node_store, nodes = backend.store, backend.nodes
    for node in ("n0", "n1", "n2"):
        run_blocking(nodes.register_node(node, "boot"))
    chans = [f"room{n}" for n in range(CHANS)]

    def connect(client: str, node: str = "n0") -> None:
        url, _server = im.connect_ticket(client, base="ws://example.com")
        run_blocking(node_store.redeem_token(url.rpartition("token=")[2]))
        run_blocking(node_store.add_connection(node, client, f"{client}-conn"))

    def connect_joining(client: str) -> None:
        connect(client)
        run_blocking(node_store.join(client, chans))

    def disconnect(client: str) -> None:
        run_blocking(node_store.remove_connection("n0", client, f"{client}-conn"))

    figures = {
        "connect": counted.measure(lambda n: connect(f"a{n}"), repeat),
        "disconnect": counted.measure(lambda n: disconnect(f"a{n}"), repeat),
        f"connect, {CHANS} chans joined": counted.measure(lambda n: connect_joining(f"b{n}"), repeat),
        f"disconnect, {CHANS} chans left": counted.measure(lambda n: disconnect(f"b{n}"), repeat),
    }
    connect("sender"), connect("receiver", "n1")
    figures["private message"] = counted.measure(lambda n: im.send_message("sender", ["receiver"], {"n": n}), repeat)
    batch = counted.measure(lambda n: im.send_messages([("sender", ["receiver"], {"n": n, "i": i}) for i in range(
        BATCH)]), max(repeat // BATCH, 10))
    figures[f"private message, in calls of {BATCH}"] = per(batch, BATCH)
    for member in range(CHAN_MEMBERS):
        connect(f"m{member}", f"n{member % CHAN_NODES}")
        im.join_chan(f"m{member}", "crowd")
    figures[f"chan message ({CHAN_MEMBERS} members, {CHAN_NODES} nodes)"] = counted.measure(
        lambda n: im.send_chan_message("m0", "crowd", {"n": n}), repeat)
    run_blocking(nodes.register_node("n0", "boot"))  # again: it aged past the TTL meanwhile
    figures["heartbeat"] = counted.measure(lambda _n: run_blocking(nodes.heartbeat("n0", "boot")), repeat)
    run_blocking(nodes.register_node("dead", "boot"))
    for client in range(REAPED):
        run_blocking(node_store.add_connection("dead", f"d{client}", f"d{client}-conn"))
        run_blocking(node_store.join(f"d{client}", chans))
    time.sleep(6.5)  # past the heartbeat TTL
    for node in ("n0", "n1", "n2"):
        run_blocking(nodes.heartbeat(node, "boot"))
    figures[f"reap, per client ({CHANS} chans)"] = per(counted.measure(lambda _n: run_blocking(nodes.reap("n0")), 1),
                                                       REAPED)
    return figures


def per(figure: dict[str, Any], items: int) -> dict[str, Any]:
    """``figure`` of an operation on ``items`` things, per thing."""
    return {key: ({name: count / items for name, count in value.items()} if isinstance(value, dict) else value / items)
            for key, value in figure.items()}


def report(figures: dict[str, dict[str, Any]]) -> None:
    print(f"{'operation':<42}{'round trips':>12}{'commands':>10}{'Redis CPU µs':>14}   commands (most run)")
    for name, figure in figures.items():
        top = ", ".join(f"{command} {count:.1f}" for command, count in
                        sorted(figure["by_command"].items(), key=lambda item: -item[1])[:6])
        print(f"{name:<42}{figure['round_trips']:>12.2f}{figure['commands']:>10.1f}{figure['cpu_us']:>14.1f}   {top}")
    print()
    print("Model: 1 % of connections reconnect a minute (a disconnect and a connect, 5 chans each), "
          f"{MESSAGES_PER_THOUSAND} private messages a second per 1,000 connections, a node per {PER_NODE:,} "
          "connections beating every 1.2 s.")
    connect_cost = figures[f"connect, {CHANS} chans joined"]
    disconnect_cost = figures[f"disconnect, {CHANS} chans left"]
    beat = figures["heartbeat"]
    for name in ("private message", f"private message, in calls of {BATCH}"):
        print(f"Messages as in {name!r}:")
        model(connect_cost, disconnect_cost, figures[name], beat)


def model(connect_cost: dict[str, Any], disconnect_cost: dict[str, Any], message: dict[str, Any],
          beat: dict[str, Any]) -> None:
    print(f"{'connections':>12}{'requests/s':>14}{'commands/s':>14}{'Redis CPU':>12}{'shards at 50 %':>16}")
    for connections in (1_000_000, 10_000_000):
        churn = connections * CHURN_PER_MINUTE / 60
        messages = connections / 1000 * MESSAGES_PER_THOUSAND
        beats = connections / PER_NODE / 1.2
        load = [(churn, connect_cost), (churn, disconnect_cost), (messages, message), (beats, beat)]
        requests = sum(rate * cost["round_trips"] for rate, cost in load)
        commands = sum(rate * cost["commands"] for rate, cost in load)
        cores = sum(rate * cost["cpu_us"] for rate, cost in load) / 1e6
        print(f"{connections:>12,}{requests:>14,.0f}{commands:>14,.0f}{cores:>11.2f}c"
              f"{math.ceil(cores / SHARD_LOAD):>16}")


if __name__ == "__main__":
    main()
