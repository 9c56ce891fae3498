"""Steps on a Redis Cluster: each command goes to the master that owns its keys' slot, in freeim's own exchange.

redis-py's ``RedisCluster`` (:mod:`.pools`) knows the nodes and which master owns each slot; freeim sends through
its nodes' connections as it sends to one server (:func:`.client._exchange`: commands packed and written in one go,
replies read as redis-py reads them). A pipeline whose steps live on several masters becomes one exchange per
master (concurrent when awaited), its replies put back in the steps' order. So a pipeline may mix slots; each step
must keep its own keys in one slot: a script whose keys span two is refused by Redis (``CROSSSLOT``), even on a
cluster of one master, and that error is the step's.

A step goes to the master of its first key (a script's first ``KEYS``); Redis checks the others. A keyless command
(``TIME``, ``INFO``...) goes with the pipeline's first keyed step, or to redis-py's default master when there is
none. ``WAIT``, which ends a durable pipeline, ends each master's exchange and answers the fewest replicas any of
them reached.

What the cluster answers while it changes is followed, per step, for :data:`ROUNDS` rounds within
:data:`~.client.STEP_TIMEOUT`: ``MOVED`` (the slot map is updated and the step sent to the new owner), ``ASK``
(``ASKING`` and the step, to the node named, once), ``NOSCRIPT`` (the scripts loaded on that master, then the step),
and a master that failed or is failing over (a connection error, ``CLUSTERDOWN``, ``TRYAGAIN``, ``READONLY``: a
pause, the slot map asked for again, the step sent again). A step sent again may have run once already: every
script is safe to (:mod:`.lua`), as with redis-py's own retries.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio.cluster
import redis.cluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)

from .client import STEP_TIMEOUT, Command, _asent_and_read, _command, _raised, _sent_and_read
from .lua import SCRIPTS
from .steps import Everywhere, Pipe, Step

#: Rounds of redirections and retries a step gets (redis-py's own: ``RedisClusterRequestTTL``).
ROUNDS = 16
#: The first pause before the slot map is asked for again after a master failed; it doubles up to :data:`MAX_PAUSE`.
FIRST_PAUSE = 0.05
MAX_PAUSE = 0.5
#: What a master that fails, or fails over, answers: the step is sent again once the slot map is asked for again.
FAILING = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, TryAgainError, ReadOnlyError)
Cluster = redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster
#: The scripts, loaded on a master that answered ``NOSCRIPT``, before the steps it is sent again.
_LOAD_SCRIPTS: list[Command] = [(("SCRIPT LOAD", source), {}) for source in SCRIPTS.values()]
_ASKING: Command = (("ASKING",), {})
#: A position in an exchange that answers no step (``ASKING``, ``SCRIPT LOAD``).
_NONE = -1
_UNANSWERED = object()


@dataclass
class _Exchange:
    """Commands for one node, in one write; ``positions``: the step each answers (:data:`_NONE`, or the ``WAIT``'s)."""

    node: Any
    commands: list[Command] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)

    def add(self, command: Command, position: int) -> None:
        self.commands.append(command)
        self.positions.append(position)


@dataclass(frozen=True)
class _Pause:
    seconds: float


@dataclass(frozen=True)
class _Moved:
    error: MovedError


class _Refresh:
    """Ask the cluster for its slot map again."""


#: What routing asks its driver to do: exchanges (answered with each one's replies, or the error it failed with),
#: a pause, a slot moved, a refresh of the slot map.
_Request = list[_Exchange] | _Pause | _Moved | _Refresh
_Routing = Generator[_Request, Any, list[Any]]


def send(client: Cluster, step: Step) -> Any:
    """How :class:`.client.Connections` sends ``step`` through a cluster's client: its reply, or an awaitable of it."""
    if isinstance(step, Everywhere):
        return _everywhere(client, step)
    commands = [_command(inner) for inner in (step.steps if isinstance(step, Pipe) else (step,))]
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return _asend(client, commands, isinstance(step, Pipe))
    replies = _drive(client, _routing(client, commands, [_first_key(client, args) for args, _options in commands]))
    return replies if isinstance(step, Pipe) else replies[0]


def _everywhere(client: Cluster, step: Everywhere) -> Any:
    """``step``'s command on each master redis-py knows, by redis-py's own routing (a rare command, off the hot path):
    the replies, None for a master that failed."""
    (args, options), masters = _command(step.step), client.get_primaries()
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        return _aeverywhere(client, masters, args, options)
    replies = []
    for master in masters:
        try:
            replies.append(client.execute_command(*args, **options, target_nodes=master))
        except FAILING:
            replies.append(None)
    return replies


async def _aeverywhere(client: redis.asyncio.cluster.RedisCluster, masters: list[Any], args: tuple[Any, ...],
                       options: dict[str, Any]) -> list[Any]:
    async def ask(master: Any) -> Any:
        try:
            return await client.execute_command(*args, **options, target_nodes=master)
        except FAILING:
            return None

    return list(await asyncio.gather(*(ask(master) for master in masters)))


async def _asend(client: redis.asyncio.cluster.RedisCluster, commands: list[Command], piped: bool) -> Any:
    await client.initialize()  # the first time only: the slot map, and redis-py's table of where commands keep keys
    keys = [await _afirst_key(client, args) for args, _options in commands]
    replies = await _adrive(client, _routing(client, commands, keys))
    return replies if piped else replies[0]


def _routing(client: Cluster, commands: list[Command], keys: list[str | None]) -> _Routing:
    """The steps' replies, in their order, routed as the module docstring says (blocking and awaited alike)."""
    slots = [None if key is None else client.keyslot(key) for key in keys]
    replies: list[Any] = [_UNANSWERED] * len(commands)
    wait = len(commands) - 1 if commands[-1][0][0] == "WAIT" else None
    if wait is not None:
        replies[wait] = None  # answered by the exchanges, not routed
    asked: dict[int, str] = {}
    forgot_scripts: set[str] = set()
    pause, deadline = FIRST_PAUSE, time.monotonic() + STEP_TIMEOUT
    for _round in range(ROUNDS):
        failed: BaseException | None = None
        try:
            exchanges = _plan(client, commands, slots, replies, asked, forgot_scripts, wait)
        except SlotNotCoveredError as uncovered:  # no master for it in the map: one is failing over
            exchanges, failed = [], uncovered
        outcomes = (yield exchanges) if exchanges else []
        forgot_scripts.clear()
        for exchange, outcome in zip(exchanges, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                failed = outcome
                continue
            for position, reply in zip(exchange.positions, outcome, strict=True):
                if position == wait:
                    replies[position] = _fewest(replies[position], reply)
                elif position != _NONE:
                    failed = _answer(position, reply, replies, asked, forgot_scripts, exchange.node) or failed
                    if isinstance(reply, MovedError):
                        yield _Moved(reply)
        if _UNANSWERED not in replies:
            return _raised(replies)
        if failed is not None:
            if time.monotonic() + pause > deadline:
                raise failed
            yield _Pause(pause)
            yield _Refresh()
            pause = min(pause * 2, MAX_PAUSE)
    raise redis.exceptions.ClusterError(f"Redis Cluster: still redirected after {ROUNDS} rounds")


def _fewest(known: Any, reply: Any) -> Any:
    """The ``WAIT`` reply of a pipeline so far: the fewest replicas any master reached, or an error it answered."""
    if known is None:
        return reply
    if isinstance(known, BaseException) or isinstance(reply, BaseException):
        return known if isinstance(known, BaseException) else reply
    return min(known, reply)


def _plan(client: Cluster, commands: list[Command], slots: list[int | None], replies: list[Any],
          asked: dict[int, str], forgot_scripts: set[str], wait: int | None) -> list[_Exchange]:
    """One exchange per node for the steps not answered yet: each to its slot's master, or to the node that
    answered ``ASK`` for it; keyless ones with the first; ``WAIT`` ending each."""
    exchanges: dict[str, _Exchange] = {}

    def to(node: Any) -> _Exchange:
        exchange = exchanges.get(node.name)
        if exchange is None:
            exchange = exchanges[node.name] = _Exchange(node)
            if node.name in forgot_scripts:
                for load in _LOAD_SCRIPTS:
                    exchange.add(load, _NONE)
        return exchange

    keyless = []
    for position, (command, slot) in enumerate(zip(commands, slots, strict=True)):
        if replies[position] is not _UNANSWERED:
            continue
        if position in asked:
            # A node the map does not know yet answers MOVED if it is the wrong one: followed as any other.
            exchange = to(client.get_node(node_name=asked[position]) or client.get_default_node())
            exchange.add(_ASKING, _NONE)
            exchange.add(command, position)
        elif slot is None:
            keyless.append(position)
        else:
            to(client.nodes_manager.get_node_from_slot(slot)).add(command, position)
    for position in keyless:
        (next(iter(exchanges.values()), None) or to(client.get_default_node())).add(commands[position], position)
    if wait is not None:
        for exchange in exchanges.values():
            exchange.add(commands[wait], wait)
    return list(exchanges.values())


def _answer(position: int, reply: Any, replies: list[Any], asked: dict[int, str], forgot_scripts: set[str],
            node: Any) -> BaseException | None:
    """Take ``reply`` as the step's, or note where to send the step again; the error of a failing master."""
    asked.pop(position, None)
    if isinstance(reply, MovedError):
        return None
    if isinstance(reply, AskError):
        asked[position] = f"{reply.host}:{reply.port}"
    elif isinstance(reply, NoScriptError):
        forgot_scripts.add(node.name)
    elif isinstance(reply, FAILING):
        return reply
    else:
        replies[position] = reply
    return None


def _first_key(client: redis.cluster.RedisCluster, args: tuple[Any, ...]) -> str | None:
    """The key whose slot a command goes to, or None for a keyless one (redis-py's command parser finds them, with
    :func:`.pools.found_keys`)."""
    keys = client.commands_parser.get_keys(client.get_default_node().redis_connection, *args)  # type: ignore[no-untyped-call]
    first: str | None = keys[0] if keys else None
    return first


async def _afirst_key(client: redis.asyncio.cluster.RedisCluster, args: tuple[Any, ...]) -> str | None:
    keys = await client.commands_parser.get_keys(*args)
    first: str | None = keys[0] if keys else None
    return first


def _drive(client: redis.cluster.RedisCluster, routing: _Routing) -> list[Any]:
    """Run ``routing`` on a blocking cluster client: its exchanges one after the other."""
    try:
        request = next(routing)
        while True:
            answer = None
            if isinstance(request, list):
                answer = [_exchange(exchange) for exchange in request]
            elif isinstance(request, _Pause):
                time.sleep(request.seconds)
            elif isinstance(request, _Moved):
                client.nodes_manager.move_slot(request.error)
            else:
                client.nodes_manager.initialize()
            request = routing.send(answer)
    except StopIteration as stop:
        replies: list[Any] = stop.value
        return replies


def _exchange(exchange: _Exchange) -> list[Any] | BaseException:
    """``exchange``'s replies, errors in place, or what its connection failed with."""
    node = exchange.node.redis_connection
    pool = node.connection_pool
    try:
        connection = pool.get_connection()
    except FAILING as error:
        return error
    try:
        return _sent_and_read(node, connection, exchange.commands)
    except FAILING as error:
        connection.disconnect()
        return error
    finally:
        pool.release(connection)


async def _adrive(client: redis.asyncio.cluster.RedisCluster, routing: _Routing) -> list[Any]:
    """Run ``routing`` on an asyncio cluster client: its exchanges at once."""
    try:
        request = next(routing)
        while True:
            answer = None
            if isinstance(request, list):
                answer = ([await _aexchange(client, request[0])] if len(request) == 1 else
                          await asyncio.gather(*(_aexchange(client, exchange) for exchange in request)))
            elif isinstance(request, _Pause):
                await asyncio.sleep(request.seconds)
            elif isinstance(request, _Moved):
                await client.nodes_manager.move_slot(request.error)
            else:
                await client.nodes_manager.initialize()
            request = routing.send(answer)
    except StopIteration as stop:
        replies: list[Any] = stop.value
        return replies


#: Per asyncio cluster client, per node: the connections its steps may hold at once (the node's ``max_connections``),
#: so that a step waits for one where the node would refuse it.
_LIMITS: weakref.WeakKeyDictionary[redis.asyncio.cluster.RedisCluster, dict[str, asyncio.Semaphore]] = \
    weakref.WeakKeyDictionary()


async def _aexchange(client: redis.asyncio.cluster.RedisCluster, exchange: _Exchange) -> list[Any] | BaseException:
    """:func:`_exchange` awaited (a connection that fails mid-read has closed itself, as redis-py's do)."""
    node: redis.asyncio.cluster.ClusterNode = exchange.node
    limits = _LIMITS.setdefault(client, {})
    limit = limits.get(node.name) or limits.setdefault(node.name, asyncio.Semaphore(node.max_connections))
    async with limit:
        try:
            connection = node.acquire_connection()
        except FAILING as error:
            return error
        try:
            return await _asent_and_read(node, connection, exchange.commands)  # type: ignore[arg-type]
        except FAILING as error:
            return error
        finally:
            node.release(connection)
