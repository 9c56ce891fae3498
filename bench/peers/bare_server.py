"""The bare peer: a minimal Python WebSocket server fed by Redis, the "Python ceiling" of the benchmark.

    python -m bench.peers.bare_server <port> <redis url>

One process per node, the ``websockets`` library on the default asyncio loop. A
client opens ``/ws/<id>[?chans=a,b]`` and joins the rooms ``user.<id>``,
``room.all`` and ``chan.<name>``; the business side PUBLISHes ``<room> <text>``
on the Redis channel :data:`CHANNEL`, which every node SUBSCRIBEs to, and each
node writes ``<text>`` to its own members of ``<room>`` with ``websockets``'
``broadcast`` (fire-and-forget: a slow client does not hold up the others). No
authentication, no presence, no delivery guarantees: what one would write in an
afternoon, and what freeim's extra work is measured against.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as redis
from redis.asyncio.client import PubSub
from websockets.asyncio.server import ServerConnection, broadcast, serve

from freeim.node.probe import probe_path, run_probe

CHANNEL = "bench.im"
EVERYONE = "room.all"


class Rooms:
    """Connections by room name (bytes, as they come from Redis)."""

    def __init__(self) -> None:
        self.members: defaultdict[bytes, set[ServerConnection]] = defaultdict(set)

    def rooms_of(self, connection: ServerConnection) -> list[bytes]:
        """``user.<id>``, ``room.all`` and ``chan.<name>`` for each ``?chans=``; raises ValueError on a bad path."""
        url = urlsplit(connection.request.path if connection.request else "")
        prefix, _, client_id = url.path.rpartition("/")
        if prefix != "/ws" or not client_id.isdigit():
            raise ValueError(f"no client id in {url.path!r}")
        chans = [c for c in parse_qs(url.query).get("chans", [""])[0].split(",") if c]
        return [f"user.{client_id}".encode(), EVERYONE.encode(), *(f"chan.{c}".encode() for c in chans)]

    async def handler(self, connection: ServerConnection) -> None:
        """Join the client's rooms, hold the connection until it closes, leave them."""
        try:
            joined = self.rooms_of(connection)
        except ValueError as error:
            await connection.close(1008, str(error))
            return
        for room in joined:
            self.members[room].add(connection)
        try:
            await connection.wait_closed()
        finally:
            for room in joined:
                members = self.members[room]
                members.discard(connection)
                if not members:
                    del self.members[room]

    def deliver(self, message: bytes) -> None:
        room, _, text = message.partition(b" ")
        members = self.members.get(room)
        if members:
            broadcast(members, text, text=True)


async def feed(pubsub: PubSub, rooms: Rooms) -> None:
    """Relay every message published on :data:`CHANNEL` to its room's members here."""
    async for message in pubsub.listen():
        rooms.deliver(message["data"])


async def main(port: int, url: str) -> None:
    rooms = Rooms()
    pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)  # before the port opens: nothing published to a client is missed
    background = [asyncio.create_task(feed(pubsub, rooms))]
    if path := probe_path():
        clients = lambda: len(rooms.members.get(EVERYONE.encode(), ()))  # noqa: E731
        background.append(asyncio.create_task(run_probe(path, f"bare:{port}", clients)))
    async with serve(rooms.handler, "127.0.0.1", port, compression=None) as server:
        print(f"bare websockets server on {port}", flush=True)
        await asyncio.gather(server.serve_forever(), *background)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
