"""The cluster backend: presence, tokens and chans in Redis; one inbox stream per node.

The only module that talks to Redis. Each operation is a generator of Redis
steps (a Lua script, or a pipeline of commands), performed with a sync client
for sync callers and with one ``redis.asyncio`` client per event loop for the
node and async callers: no ``async_to_sync``, no client shared across loops.

Transport: each node reads its own inbox stream (``XREAD BLOCK`` from the last id
it saw), and the helper appends one entry per node per call, all nodes in one
pipeline; the append trims the oldest entries past ``TRANSPORT_MAX_BYTES``, and each
node trims what is older than a minute from its own inbox on its upkeep beat. A stream
keeps what arrives while the node's reader reconnects or its loop stalls, where PUBLISH
would drop it. Keys: :mod:`.redis_keys`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
import time
import weakref
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript, Script
from redis.retry import Retry

from ..conf import conf
from ..effects import Effects, adrive, drive
from ..exceptions import StoreUnavailable, TooManyChans, TooManyConnections
from ..ids import ClientId, client_id
from .base import Backend, Payload
from .redis_keys import Keys
from .redis_lua import SCRIPTS

logger = logging.getLogger(__name__)
K = TypeVar("K")
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
#: A node's inbox keeps the last minute: a node stalled or reconnecting for less loses nothing.
INBOX_RETENTION_MS = 60_000
EVENTS_MAXLEN = 100_000
DROP_CHUNK = 500
READ_COUNT = 500
#: Node upkeep, run on a pool of its own so that heartbeats go through during a storm of connects.
CONTROL_OPERATIONS = frozenset({"heartbeat", "register_node", "reap", "drop_node", "trim_inbox"})
#: How often a script is sent again with the chans (or members) Redis said it also needs
#: declared; each retry means they changed in between, so a few suffice.
DECLARE_ATTEMPTS = 5
#: Batch ids a node remembers, to skip a batch that a retried append wrote twice.
SEEN_BATCHES = 10_000


@dataclass(frozen=True)
class Lua:
    """Run script ``name`` with ``KEYS = keys`` and ``ARGV = args``."""

    name: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Pipe:
    """Run ``commands`` (``(method, args)``, or scripts) in one non-transactional pipeline."""

    commands: tuple[tuple[str, tuple[Any, ...]] | Lua, ...]


@dataclass(frozen=True)
class Cmd:
    """Run one command: ``client.<method>(*args)``."""

    method: str
    args: tuple[Any, ...]


def one(method: str, *args: Any) -> Cmd:
    return Cmd(method, args)


async def _as_list(result: Awaitable[Any]) -> list[Any]:
    return [await result]


def pool_options(asynchronous: bool = False) -> dict[str, Any]:
    """Connection settings for a pool (of ``redis.asyncio`` if ``asynchronous``): wait for a free
    connection, fail in seconds, not minutes.

    A command that fails on a broken connection or times out is sent again on a new connection,
    twice at most: after a Redis restart every pooled connection is dead, and each would otherwise
    fail one call. A command may then run twice; every script is safe to (:mod:`.redis_lua`). The
    asyncio client needs redis-py's asyncio ``Retry``: given the blocking one, it retried nothing.
    """
    retry = (AsyncRetry if asynchronous else Retry)(ExponentialBackoff(cap=0.5, base=0.05), 2)
    return {"max_connections": 64, "timeout": 5, "decode_responses": True, "socket_connect_timeout": 2,
            "socket_timeout": 5, "retry": retry}


class RedisBackend(Backend):
    """Store and transport for many nodes and business processes sharing one Redis."""

    local_events = False

    def __init__(self, url: str, prefix: str, heartbeat_ttl: float) -> None:
        self.url = url
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.heartbeat_ttl = heartbeat_ttl
        self._sync = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(url, **pool_options()))
        self._sync_scripts = {name: Script(self._sync, source) for name, source in SCRIPTS.items()}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, tuple[Any, dict[str, Any]]]] = \
            weakref.WeakKeyDictionary()

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
            return scripts[step.name](keys=step.keys, args=step.args, client=client)
        if isinstance(step, Cmd):
            return getattr(client, step.method)(*step.args)
        if len(step.commands) == 1:  # in redis-py a pipeline of one costs several times the plain command
            result = self._issue(client, scripts, self._single(step.commands[0]))
            return _as_list(result) if inspect.isawaitable(result) else [result]
        pipe = client.pipeline(transaction=False)
        for command in step.commands:
            if isinstance(command, Lua):  # redis-py's async Script object cannot queue itself on a pipeline
                script = scripts[command.name]
                pipe.scripts.add(script)  # loaded first if Redis does not know it
                pipe.evalsha(script.sha, len(command.keys), *command.keys, *command.args)
            else:
                getattr(pipe, command[0])(*command[1])
        return pipe.execute()

    @staticmethod
    def _single(command: tuple[str, tuple[Any, ...]] | Lua) -> Lua | Cmd:
        return command if isinstance(command, Lua) else Cmd(*command)

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
            options = {**pool_options(asynchronous=True), **({"max_connections": 2} if control else {})}
            client = redis.asyncio.Redis(connection_pool=redis.asyncio.BlockingConnectionPool.from_url(self.url,
                                                                                                     **options))
            found = (client, {name: AsyncScript(client, source) for name, source in SCRIPTS.items()})
            clients[control] = found
        return found

    # Tokens
    def issue_token(self, token: str, record: dict[str, Any], ttl: int) -> Effects[None]:
        yield one("set", self.keys.token(token), json.dumps(record), ttl)

    def redeem_token(self, token: str) -> Effects[dict[str, Any] | None]:
        raw = yield one("getdel", self.keys.token(token))
        return json.loads(raw) if raw else None

    # Nodes
    def _beat(self, node: str, boot: str, mode: str) -> Lua:
        return Lua("heartbeat", (self.keys.node(node, "alive"), self.keys.shared("nodes")),
                   (node, boot, self._ttl_ms, mode))

    @property
    def _ttl_ms(self) -> int:
        return int(self.heartbeat_ttl * 1000)

    def register_node(self, node: str, boot: str) -> Effects[None]:
        yield self._beat(node, boot, "register")

    def heartbeat(self, node: str, boot: str) -> Effects[bool]:
        return bool((yield self._beat(node, boot, "beat")))

    def _nodes_by_age(self, which: str) -> Lua:
        return Lua("nodes_by_age", (self.keys.shared("nodes"),), (self._ttl_ms, which))

    def _reaper_lock(self, me: str, ttl_ms: int, action: str) -> Lua:
        return Lua("reaper_lock", (self.keys.shared("reaper"),), (me, ttl_ms, action))

    def alive_nodes(self) -> Effects[list[str]]:
        return sorted((yield self._nodes_by_age("alive")))

    def reap(self, me: str) -> Effects[list[str]]:
        dead = yield self._nodes_by_age("dead")
        if not dead or not (yield self._reaper_lock(me, self._ttl_ms * 3, "take")):
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
            yield self._reaper_lock(me, 0, "give")

    def drop_node(self, node: str, force: bool = True) -> Effects[list[ClientId]]:
        return (yield from self._drop(node, force)) or []

    def _drop(self, node: str, force: bool) -> Effects[list[ClientId] | None]:
        """Take ``node``'s connections off, a chunk of them a round; None if it came back alive."""
        gone: list[ClientId] = []
        while True:  # each round deletes what it saw, so scanning from 0 again moves on
            _cursor, entries = yield one("hscan", self.keys.node(node, "conns"), 0, None, DROP_CHUNK)
            if not entries:
                break
            by_client: dict[str, list[str]] = defaultdict(list)
            for conn, client in entries.items():
                by_client[client].append(conn)
            results = yield from self._detach_many(node, by_client, "", "own" if force else "reap")
            if "alive" in results.values():
                return None
            gone += [client_id(c) for c, result in results.items() if result == "offline"]
        node_keys = (self.keys.node(node, "conns"), self.keys.node(node, "alive"), *self._inbox(node))
        forgotten = yield Lua("forget_node", (*node_keys, self.keys.shared("nodes")), (node, "1" if force else "0"))
        return gone if forgotten or force else None

    # Presence
    def add_connection(self, node: str, client: ClientId, conn: str, meta: str = "") -> Effects[bool]:
        fixed = (self.keys.node(node, "conns"), self.keys.client(client, "conns"), self.keys.client(client, "chans"),
                 self.keys.shared("online"), self.keys.shared("events"))
        args = (node, client, conn, meta, EVENTS_MAXLEN, conf.MAX_CONNECTIONS_PER_CLIENT)

        def attach(chans: list[str]) -> Lua:
            return Lua("attach", (*fixed, *(self.keys.chan(chan, "nodes") for chan in chans)), (*args, *chans))

        [answer] = (yield from self._declaring({client: attach}))[client]
        if answer == "full":
            raise TooManyConnections()
        return bool(answer == "online")

    def remove_connection(self, node: str, client: ClientId, conn: str, meta: str = "",
                          chans: tuple[str, ...] = ()) -> Effects[bool]:
        results = yield from self._detach_many(node, {str(client): [conn]}, meta, "own", {str(client): list(chans)})
        return results[str(client)] == "offline"

    def _detach_many(self, node: str, conns_by_client: dict[str, list[str]], meta: str, mode: str,
                     chans: dict[str, list[str]] | None = None) -> Effects[dict[str, str]]:
        """Take each client's ``conns`` off ``node`` (one script per client, pipelined): client -> answer.

        ``chans`` guesses each client's chans, to declare at once; without a guess, none are.
        """
        scripts = {client: functools.partial(self._detach, node, client, conns, meta, mode)
                   for client, conns in conns_by_client.items()}
        answers = yield from self._declaring(scripts, chans)
        return {client: answer[0] for client, answer in answers.items()}

    def _detach(self, node: str, client: str, conns: list[str], meta: str, mode: str, chans: list[str]) -> Lua:
        fixed = (self.keys.node(node, "conns"), self.keys.node(node, "alive"), self.keys.client(client, "conns"),
                 self.keys.client(client, "chans"), self.keys.shared("online"), self.keys.shared("events"),
                 self.keys.shared("chans"))
        return Lua("detach", (*fixed, *self._chan_keys(chans)), (node, client, meta, EVENTS_MAXLEN, mode, len(conns),
                                                                 *conns, *chans))

    def _declaring(self, scripts: dict[K, Callable[[list[str]], Lua]],
                   guesses: dict[K, list[str]] | None = None) -> Effects[dict[K, list[str]]]:
        """Run each script, built from the names (chans, members) it declares, all in one pipeline;
        run those that answer ``retry`` again with the names Redis gave, until none does.

        ``guesses``: the names to declare at first (none where there is no guess).
        """
        pending = {key: (guesses or {}).get(key, []) for key in scripts}
        results: dict[K, list[str]] = {}
        for _attempt in range(DECLARE_ATTEMPTS):
            order = list(pending)
            answers = yield Pipe(tuple(scripts[key](pending[key]) for key in order))
            pending = {}
            for key, (answer, *names) in zip(order, answers, strict=True):
                if answer == "retry":
                    pending[key] = names
                else:
                    results[key] = [answer, *names]
            if not pending:
                return results
        raise StoreUnavailable("What a script depends on (a client's chans, a chan's members) kept changing; "
                               "try again.")

    def locate(self, client_ids: list[ClientId]) -> Effects[dict[ClientId, dict[str, int]]]:
        if not client_ids:
            return {}
        found = yield Pipe(tuple(("hvals", (self.keys.client(c, "conns"),)) for c in client_ids))
        return {c: dict(Counter(nodes)) for c, nodes in zip(client_ids, found, strict=True) if nodes}

    def online_clients(self) -> Effects[list[ClientId]]:
        return [client_id(c) for c in (yield one("smembers", self.keys.shared("online")))]

    # Chans
    def _chan_keys(self, chans: list[str]) -> tuple[str, ...]:
        """Each chan's members and nodes keys, in the order the scripts read them."""
        return tuple(key for chan in chans for key in (self.keys.chan(chan, "members"), self.keys.chan(chan, "nodes")))

    def _chan_change(self, script: str, client: ClientId, chans: list[str], *args: Any) -> Lua:
        fixed = (self.keys.client(client, "conns"), self.keys.client(client, "chans"), self.keys.shared("chans"))
        return Lua(script, (*fixed, *self._chan_keys(chans)), (client, *args, *chans))

    def join(self, client: ClientId, chans: list[str]) -> Effects[bool]:
        joined = yield self._chan_change("join", client, chans, conf.MAX_CHANS_PER_CLIENT)
        if joined < 0:
            raise TooManyChans()
        return bool(joined)

    def leave(self, client: ClientId, chans: list[str]) -> Effects[None]:
        yield self._chan_change("leave", client, chans)

    def chan_members(self, chan: str) -> Effects[list[ClientId]]:
        return [client_id(c) for c in (yield one("smembers", self.keys.chan(chan, "members")))]

    def clear_chan(self, chan: str) -> Effects[list[ClientId]]:
        fixed = (self.keys.chan(chan, "members"), self.keys.chan(chan, "nodes"), self.keys.shared("chans"))

        def clear(members: list[str]) -> Lua:
            return Lua("clear_chan", (*fixed, *(self.keys.client(member, "chans") for member in members)),
                       (chan, *members))

        _done, *members = (yield from self._declaring({chan: clear}))[chan]
        return [client_id(c) for c in members]

    def chan_list(self) -> Effects[list[tuple[str, int]]]:
        return sorted((chan, int(score)) for chan, score in (yield one("zrange", self.keys.shared("chans"), 0, -1,
                                                                             False, True)))

    def client_chans(self, client: ClientId) -> Effects[list[str]]:
        return sorted((yield one("smembers", self.keys.client(client, "chans"))))

    def clients_chans(self, client_ids: list[ClientId]) -> Effects[dict[ClientId, list[str]]]:
        found = yield Pipe(tuple(("smembers", (self.keys.client(c, "chans"),)) for c in client_ids))
        return {c: sorted(chans) for c, chans in zip(client_ids, found, strict=True)}

    def chan_online(self, chan: str) -> Effects[int]:
        return int((yield one("zscore", self.keys.shared("chans"), chan)) or 0)

    def chan_nodes(self, chan: str) -> Effects[list[str]]:
        return sorted((yield one("hkeys", self.keys.chan(chan, "nodes"))))

    # Events, for the freeim_events workers
    def read_events(self, group: str, consumer: str, claim_idle_ms: int,
                    block_ms: int) -> Effects[list[tuple[str, dict[str, str]]]]:
        """Events for ``consumer``: first those a dead worker left unacked for ``claim_idle_ms``, then new ones."""
        events = self.keys.shared("events")
        yield Lua("ensure_group", (events,), (group,))
        _next, entries, *_deleted = yield one("xautoclaim", events, group, consumer, claim_idle_ms, "0-0",
                                              READ_COUNT)
        if not entries:
            found = yield one("xreadgroup", group, consumer, {events: ">"}, READ_COUNT, block_ms)
            entries = found[0][1] if found else []
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    def ack_events(self, group: str, entry_ids: list[str]) -> Effects[None]:
        if entry_ids:
            yield one("xack", self.keys.shared("events"), group, *entry_ids)

    # Transport
    def _inbox(self, node: str) -> tuple[str, ...]:
        return tuple(self.keys.node(node, what) for what in ("inbox", "inbox-sz", "inbox-ix"))

    def publish(self, batches: dict[str, list[Payload]]) -> Effects[None]:
        if batches:
            limit = conf.TRANSPORT_MAX_BYTES
            yield Pipe(tuple(Lua("append", self._inbox(node), (os.urandom(8).hex(), json.dumps(payloads), limit))
                             for node, payloads in batches.items()))

    def trim_inbox(self, node: str) -> Effects[None]:
        """Drop what ``node``'s inbox holds past its age (a node that nobody sends to trims its own)."""
        yield Lua("trim_inbox", self._inbox(node), (conf.TRANSPORT_MAX_BYTES,
                                                    int(time.time() * 1000) - INBOX_RETENTION_MS))

    def inbox_tail(self, node: str) -> Effects[str]:
        newest = yield one("xrevrange", self.keys.node(node, "inbox"), "+", "-", 1)
        return str(newest[0][0]) if newest else "0-0"

    async def receive(self, node: str, deliver: Callable[[list[Payload]], None], after: str) -> None:
        """Read ``node``'s inbox from the entry id ``after``, across reconnects, until cancelled.

        A batch whose append was retried after Redis ran it is in the stream twice: delivered once.
        """
        inbox = self.keys.node(node, "inbox")
        reader = redis.asyncio.Redis.from_url(self.url, decode_responses=True, socket_timeout=None,
                                              socket_connect_timeout=2)
        seen: OrderedDict[str, None] = OrderedDict()
        last_id = after
        try:
            while True:
                try:
                    for _stream, entries in await reader.xread({inbox: last_id}, count=READ_COUNT, block=5000):
                        for entry_id, fields in entries:
                            last_id = entry_id
                            if _first_time(seen, fields.get("b", entry_id)):
                                deliver(json.loads(fields["p"]))
                except REDIS_ERRORS as error:
                    logger.warning("freeim node %s: inbox read failed (%s); retrying", node, error)
                    await asyncio.sleep(0.5)
        finally:
            await reader.aclose()

    def flush(self) -> None:
        """Delete every key under the prefix (tests)."""
        keys = list(self._sync.scan_iter(self.keys.everything(), count=1000))
        if keys:
            self._sync.delete(*keys)


def _first_time(seen: OrderedDict[str, None], batch: str) -> bool:
    """Whether ``batch`` is new; remembers the last :data:`SEEN_BATCHES` ids."""
    if batch in seen:
        return False
    seen[batch] = None
    if len(seen) > SEEN_BATCHES:
        seen.popitem(last=False)
    return True
