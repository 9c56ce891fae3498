"""The cluster backend: presence, tokens and chans in Redis; one inbox stream per node.

The only module that talks to Redis. Each operation is a generator of Redis
steps (a Lua script, or a pipeline of commands), performed with a sync client
for sync callers and with one ``redis.asyncio`` client per event loop for the
node and async callers: no ``async_to_sync``, no client shared across loops.

Transport: each node reads its own stream ``p:node:<n>:inbox`` (``XREAD BLOCK``
from the last id it saw), and the helper writes one ``XADD`` per node per call,
all nodes in one pipeline, trimming entries older than a minute (``MINID ~``).
A stream keeps what arrives while the node's reader reconnects or its loop
stalls; PUBLISH would drop it (research/channels-risks.md Q3, Q7).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript, Script
from redis.retry import Retry

from ..effects import Effects, adrive, drive
from ..exceptions import StoreUnavailable
from ..ids import ClientId, client_id
from .base import Backend, Payload
from .redis_lua import SCRIPTS

logger = logging.getLogger(__name__)
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
#: A node's inbox keeps the last minute: a node stalled or reconnecting for less loses nothing.
INBOX_RETENTION_MS = 60_000
EVENTS_MAXLEN = 100_000
DROP_CHUNK = 500
READ_COUNT = 500
#: Node upkeep, run on a pool of its own so that heartbeats go through during a storm of connects.
CONTROL_OPERATIONS = frozenset({"heartbeat", "register_node", "reap", "drop_node"})


@dataclass(frozen=True)
class Lua:
    """Run script ``name`` with ``ARGV = prefix, *args``."""

    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Pipe:
    """Run ``commands`` (``(method, args)``) in one non-transactional pipeline."""

    commands: tuple[tuple[str, tuple[Any, ...]], ...]


@dataclass(frozen=True)
class Cmd:
    """Run one command: ``client.<method>(*args)``."""

    method: str
    args: tuple[Any, ...]


def one(method: str, *args: Any) -> Cmd:
    return Cmd(method, args)


async def _as_list(result: Awaitable[Any]) -> list[Any]:
    return [await result]


def pool_options() -> dict[str, Any]:
    """Connection settings for every pool: wait for a free connection, fail in seconds, not minutes."""
    return {"max_connections": 64, "timeout": 5, "decode_responses": True, "socket_connect_timeout": 2,
            "socket_timeout": 5, "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2)}


class RedisBackend(Backend):
    """Store and transport for many nodes and business processes sharing one Redis."""

    local_events = False

    def __init__(self, url: str, prefix: str, heartbeat_ttl: float) -> None:
        self.url = url
        self.prefix = prefix
        self.heartbeat_ttl = heartbeat_ttl
        self._sync = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, **pool_options()))
        self._sync_scripts = {name: Script(self._sync, source) for name, source in SCRIPTS.items()}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, tuple[Any, dict[str, Any]]]] = \
            weakref.WeakKeyDictionary()

    def key(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    # Running operations
    def call(self, name: str, *args: Any) -> Any:
        try:
            return drive(getattr(self, name)(*args), self._perform)
        except REDIS_ERRORS as error:
            raise StoreUnavailable(f"Redis is unavailable: {error}") from error

    async def acall(self, name: str, *args: Any) -> Any:
        perform = self._aperform_control if name in CONTROL_OPERATIONS else self._aperform
        try:
            return await adrive(getattr(self, name)(*args), perform)
        except REDIS_ERRORS as error:
            raise StoreUnavailable(f"Redis is unavailable: {error}") from error

    def _issue(self, client: Any, scripts: dict[str, Any], step: Lua | Cmd | Pipe) -> Any:
        """Send ``step`` through ``client``: its result, or an awaitable of it for a ``redis.asyncio`` client."""
        if isinstance(step, Lua):
            return scripts[step.name](args=(self.prefix, *step.args), client=client)
        if isinstance(step, Cmd):
            return getattr(client, step.method)(*step.args)
        if len(step.commands) == 1:  # in redis-py a pipeline of one costs several times the plain command
            method, args = step.commands[0]
            result = getattr(client, method)(*args)
            return _as_list(result) if inspect.isawaitable(result) else [result]
        pipe = client.pipeline(transaction=False)
        for method, args in step.commands:
            getattr(pipe, method)(*args)
        return pipe.execute()

    def _perform(self, step: Lua | Cmd | Pipe) -> Any:
        return self._issue(self._sync, self._sync_scripts, step)

    async def _aperform(self, step: Lua | Cmd | Pipe, control: bool = False) -> Any:
        return await self._issue(*self._for_loop(control), step)

    async def _aperform_control(self, step: Lua | Cmd | Pipe) -> Any:
        return await self._aperform(step, control=True)

    def _for_loop(self, control: bool) -> tuple[Any, dict[str, AsyncScript]]:
        """This loop's client (connections cannot cross event loops) and its scripts; ``control``:
        the small pool of heartbeats and cleanup, which a storm of connects cannot starve."""
        clients = self._loops.setdefault(asyncio.get_running_loop(), {})
        found = clients.get(control)
        if found is None:
            options = {**pool_options(), **({"max_connections": 2} if control else {})}
            client = redis.asyncio.Redis(connection_pool=redis.asyncio.BlockingConnectionPool.from_url(self.url,
                                                                                                     **options))
            found = (client, {name: AsyncScript(client, source) for name, source in SCRIPTS.items()})
            clients[control] = found
        return found

    # Tokens
    def issue_token(self, token: str, record: dict[str, Any], ttl: int) -> Effects[None]:
        yield one("set", self.key("tok", token), json.dumps(record), ttl)

    def redeem_token(self, token: str) -> Effects[dict[str, Any] | None]:
        raw = yield one("getdel", self.key("tok", token))
        return json.loads(raw) if raw else None

    # Nodes
    def register_node(self, node: str, boot: str) -> Effects[None]:
        yield Lua("heartbeat", (node, boot, self._ttl_ms, "register"))

    def heartbeat(self, node: str, boot: str) -> Effects[bool]:
        return bool((yield Lua("heartbeat", (node, boot, self._ttl_ms, "beat"))))

    @property
    def _ttl_ms(self) -> int:
        return int(self.heartbeat_ttl * 1000)

    def alive_nodes(self) -> Effects[list[str]]:
        return sorted((yield Lua("nodes_by_age", (self._ttl_ms, "alive"))))

    def reap(self, me: str) -> Effects[list[str]]:
        dead = yield Lua("nodes_by_age", (self._ttl_ms, "dead"))
        if not dead or not (yield Lua("reaper_lock", (me, self._ttl_ms * 3, "take"))):
            return []
        try:
            reaped = []
            for node in dead:
                gone = yield from self._drop(node, force=False)
                if gone is not None:
                    reaped.append(node)
                    logger.warning("freeim: node %s is dead; %d of its clients went offline", node, len(gone))
            return reaped
        finally:
            yield Lua("reaper_lock", (me, 0, "give"))

    def drop_node(self, node: str, force: bool = True) -> Effects[list[ClientId]]:
        return (yield from self._drop(node, force)) or []

    def _drop(self, node: str, force: bool) -> Effects[list[ClientId] | None]:
        """Take ``node``'s clients off in chunks (one Lua call each); None if it came back alive."""
        gone: list[ClientId] = []
        clients_key = self.key("node", node, "clients")
        while True:  # each round deletes what it saw, so scanning from 0 again moves on
            _cursor, entries = yield one("hscan", clients_key, 0, None, DROP_CHUNK)
            if not entries:
                break
            removed = yield Lua("drop_clients", (node, EVENTS_MAXLEN, "1" if force else "0", *entries))
            if removed is None:
                return None
            gone += [client_id(c) for c in removed]
        forgotten = yield Lua("forget_node", (node, "1" if force else "0"))
        return gone if forgotten or force else None

    # Presence
    def add_connection(self, node: str, client: ClientId, meta: str = "") -> Effects[bool]:
        return bool((yield Lua("add_connection", (node, client, meta, EVENTS_MAXLEN))))

    def remove_connection(self, node: str, client: ClientId, meta: str = "") -> Effects[bool]:
        return bool((yield Lua("remove_connection", (node, client, meta, EVENTS_MAXLEN))))

    def locate(self, client_ids: list[ClientId]) -> Effects[dict[ClientId, dict[str, int]]]:
        if not client_ids:
            return {}
        found = yield Pipe(tuple(("hgetall", (self.key("client", c, "nodes"),)) for c in client_ids))
        return {c: {n: int(k) for n, k in nodes.items()} for c, nodes in zip(client_ids, found, strict=True) if nodes}

    def online_clients(self) -> Effects[list[ClientId]]:
        return [client_id(c) for c in (yield one("hkeys", self.key("online")))]

    # Chans
    def join(self, client: ClientId, chans: list[str]) -> Effects[bool]:
        return bool((yield Lua("join", (client, *chans))))

    def leave(self, client: ClientId, chans: list[str]) -> Effects[None]:
        yield Lua("leave", (client, *chans))

    def chan_members(self, chan: str) -> Effects[list[ClientId]]:
        return [client_id(c) for c in (yield one("smembers", self.key("chan", chan)))]

    def clear_chan(self, chan: str) -> Effects[list[ClientId]]:
        return [client_id(c) for c in (yield Lua("clear_chan", (chan,)))]

    def chan_list(self) -> Effects[list[tuple[str, int]]]:
        return sorted((chan, int(score)) for chan, score in (yield one("zrange", self.key("chans"), 0, -1,
                                                                             False, True)))

    def client_chans(self, client: ClientId) -> Effects[list[str]]:
        return sorted((yield one("smembers", self.key("client", client, "chans"))))

    def chan_online(self, chan: str) -> Effects[int]:
        return int((yield one("zscore", self.key("chans"), chan)) or 0)

    def chan_nodes(self, chan: str) -> Effects[list[str]]:
        return sorted((yield one("hkeys", self.key("chan", chan, "nodes"))))

    # Events, for the freeim_events workers
    def read_events(self, group: str, consumer: str, claim_idle_ms: int,
                    block_ms: int) -> Effects[list[tuple[str, dict[str, str]]]]:
        """Events for ``consumer``: first those a dead worker left unacked for ``claim_idle_ms``, then new ones."""
        events = self.key("events")
        yield Lua("ensure_group", (group,))
        _next, entries, *_deleted = yield one("xautoclaim", events, group, consumer, claim_idle_ms, "0-0",
                                              READ_COUNT)
        if not entries:
            found = yield one("xreadgroup", group, consumer, {events: ">"}, READ_COUNT, block_ms)
            entries = found[0][1] if found else []
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    def ack_events(self, group: str, entry_ids: list[str]) -> Effects[None]:
        if entry_ids:
            yield one("xack", self.key("events"), group, *entry_ids)

    # Transport
    def publish(self, batches: dict[str, list[Payload]]) -> Effects[None]:
        if batches:
            oldest = f"{int(time.time() * 1000) - INBOX_RETENTION_MS}-0"
            yield Pipe(tuple(("xadd", (self.key("node", node, "inbox"), {"p": json.dumps(payloads)}, "*", None,
                                       True, False, oldest)) for node, payloads in batches.items()))

    async def receive(self, node: str, deliver: Callable[[list[Payload]], None]) -> None:
        """Read ``node``'s inbox from where this process started, across reconnects, until cancelled."""
        inbox = self.key("node", node, "inbox")
        reader = redis.asyncio.Redis.from_url(self.url, decode_responses=True, socket_timeout=None,
                                              socket_connect_timeout=2)
        last_id = None
        try:
            while True:
                try:
                    if last_id is None:
                        newest = await reader.xrevrange(inbox, count=1)
                        last_id = newest[0][0] if newest else "0-0"
                    for _stream, entries in await reader.xread({inbox: last_id}, count=READ_COUNT, block=5000):
                        for entry_id, fields in entries:
                            last_id = entry_id
                            deliver(json.loads(fields["p"]))
                except REDIS_ERRORS as error:
                    logger.warning("freeim node %s: inbox read failed (%s); retrying", node, error)
                    await asyncio.sleep(0.5)
        finally:
            await reader.aclose()

    def flush(self) -> None:
        """Delete every key under the prefix (tests)."""
        keys = list(self._sync.scan_iter(f"{self.prefix}:*", count=1000))
        if keys:
            self._sync.delete(*keys)
