"""Connections to Redis, and the two ways of running steps on them: blocking and awaiting.

The only module that sends commands to Redis (with :mod:`.cluster`, which routes them over a cluster's
masters; the node's inbox reader aside, :mod:`.transport`).
A blocking client serves sync callers; each event loop gets ``redis.asyncio`` clients of its
own (connections cannot cross loops), so neither side goes through ``async_to_sync``. Redis
errors (unreachable, timed out, or a command refused) become :class:`~freeim.exceptions.StoreUnavailable`
here, in one place.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis
import redis.asyncio

from ... import measures, redis_url
from ...conf import conf
from ...exceptions import StoreUnavailable
from .lua import SCRIPTS
from .pools import AsyncClient, Client, connect, packed
from .steps import Cmd, Everywhere, Lua, Pipe, Step, Steps, adrive, drive

T = TypeVar("T")
P = ParamSpec("P")
#: What Redis fails with: unreachable, timed out, or refusing the command (out of memory, a replica that takes no
#: writes, a bad database index); scripts that Redis forgot are loaded again before this (:meth:`Connections.issue`).
#: A cluster's client fails with redis-py's cluster errors too (no node reachable to learn the slots from, a slot
#: that no master serves), which are not ``RedisError``\ s.
REDIS_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)
#: How long a durable step waits for its replicas (``REDIS_WAIT_REPLICAS``) before it fails.
WAIT_TIMEOUT_MS = 1000
#: Seconds an awaited step may take, its retries included, before it fails (a blocking one: each read's socket
#: timeout, :func:`.pools.pool_options`).
STEP_TIMEOUT = 5.0
#: What a script is sent as (``EVALSHA``): Redis's SHA1 of its source.
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}


class Connections:
    """One blocking client for the process, and per event loop an asyncio client for the work
    and one for node upkeep (a small pool of its own, so a storm of connects cannot starve the
    heartbeats)."""

    def __init__(self, url: str) -> None:
        self.url = url
        target = redis_url.parse(url)
        #: With Sentinel, sends wait for one replica unless ``REDIS_WAIT_REPLICAS`` says otherwise.
        self.sentinel = isinstance(target, redis_url.SentinelTarget)
        #: A Redis Cluster: a command's keys must all be in one slot.
        self.cluster = isinstance(target, redis_url.ClusterTarget)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, AsyncClient]] = \
            weakref.WeakKeyDictionary()
        #: How a step reaches Redis, chosen once: on one connection of the one server, or routed to the masters
        #: that own its keys (:mod:`.cluster`, built on this module's exchange, so imported once it is loaded).
        self._send: Callable[[Any, Step], Any] = self._send_to_server
        if self.cluster:
            from . import cluster

            self._send = cluster.send

    @functools.cached_property
    def blocking(self) -> Client:
        """The blocking client, made at its first use: a cluster's asks the cluster for its slots when it is made,
        and a process that starts while Redis is down gets ``StoreUnavailable`` from its first call."""
        return connect(self.url)

    def for_loop(self, upkeep: bool) -> AsyncClient:
        """The running loop's client (the upkeep one if ``upkeep``).

        Its reads have no timeout of their own: redis-py's asyncio connection arms one per reply (a timer
        handle made and cancelled: a sixth of a send's CPU in a pipeline of replies), so each step is given
        :data:`STEP_TIMEOUT` as a whole instead (:func:`_measured`)."""
        clients = self._loops.setdefault(asyncio.get_running_loop(), {})
        found = clients.get(upkeep)
        if found is None:
            found = clients[upkeep] = connect(self.url, asynchronous=True, socket_timeout=None,
                                              **({"max_connections": 2} if upkeep else {}))
        return found

    def wait_replicas(self) -> int:
        """The replicas a durable step waits for: ``REDIS_WAIT_REPLICAS``, by default 1 with Sentinel, else 0."""
        replicas = conf.REDIS_WAIT_REPLICAS
        return (1 if self.sentinel else 0) if replicas is None else replicas

    def issue(self, client: Any, step: Step) -> Any:
        """Send ``step`` through ``client`` (one of these): its reply, or an awaitable of it for an
        asyncio client. Every step goes to Redis through here, once: each is timed, and counted if it
        fails, by its kind (:func:`kind`). A durable pipeline ends with ``WAIT`` for :meth:`wait_replicas`."""
        if isinstance(step, Pipe) and step.durable and (replicas := self.wait_replicas()):
            reply = self.issue(client, Pipe((*step.steps, Cmd("wait", (replicas, WAIT_TIMEOUT_MS)))))
            return _areplicated(reply, replicas) if inspect.isawaitable(reply) else _replicated(reply, replicas)
        started = perf_counter()
        try:
            reply = self._send(client, step)
        except REDIS_ERRORS as error:
            _measure(step, started, error)
            raise
        if inspect.isawaitable(reply):
            return _measured(reply, step, started)
        _measure(step, started)
        return reply

    def _send_to_server(self, client: Any, step: Step) -> Any:
        if isinstance(step, Everywhere):  # one master: a list of its reply
            reply = self._send_to_server(client, step.step)
            return _listed(reply) if inspect.isawaitable(reply) else [reply]
        commands = [_command(inner) for inner in (step.steps if isinstance(step, Pipe) else (step,))]
        if isinstance(client, redis.asyncio.Redis):
            return _areplies(client, commands, isinstance(step, Pipe))
        try:
            replies = _exchange(client, commands)
        except redis.exceptions.NoScriptError:
            for source in SCRIPTS.values():
                client.script_load(source)
            replies = _exchange(client, commands)
        return replies if isinstance(step, Pipe) else replies[0]


def kind(step: Step) -> str:
    """What :data:`~freeim.measures.REDIS_SECONDS` calls ``step``: a script's name, a command's, or
    ``pipeline:<its first step's>`` (a pipeline of one is sent as that one)."""
    if isinstance(step, Pipe):
        return kind(step.steps[0]) if len(step.steps) == 1 else f"pipeline:{kind(step.steps[0])}"
    if isinstance(step, Everywhere):
        return f"everywhere:{kind(step.step)}"
    return step.name if isinstance(step, Lua) else step.method


def _measure(step: Step, started: float, error: BaseException | None = None) -> None:
    what = kind(step)
    measures.REDIS_SECONDS.observe(perf_counter() - started, what)
    if error is not None:
        measures.REDIS_ERRORS.inc(what, type(error).__name__)


async def _listed(reply: Awaitable[Any]) -> list[Any]:
    return [await reply]


async def _measured(reply: Awaitable[Any], step: Step, started: float) -> Any:
    """``reply`` awaited within :data:`STEP_TIMEOUT` (cut short, redis-py drops the connection it read from)."""
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            answer = await reply
    except TimeoutError as late:
        error = redis.TimeoutError(f"no answer from Redis within {STEP_TIMEOUT} s")
        _measure(step, started, error)
        raise error from late
    except REDIS_ERRORS as error:
        _measure(step, started, error)
        raise
    _measure(step, started)
    return answer


class _Recorder(redis.Redis):
    """A client that sends nothing: redis-py's command methods, called on it, answer the command they would send.
    Never connected (made without ``__init__``)."""

    def execute_command(self, *args: Any, **options: Any) -> Command:
        return args, options


_RECORDER = object.__new__(_Recorder)
#: A command's arguments, and redis-py's options for reading its reply.
Command = tuple[tuple[Any, ...], dict[str, Any]]


def _command(step: Lua | Cmd) -> Command:
    """What ``step`` sends: a script by its SHA alone (redis-py would ask Redis whether it knows it first,
    ``SCRIPT EXISTS``, one more round trip; Redis forgets scripts only when it restarts, and the caller loads them
    then and sends again, which every step is safe to: :mod:`.lua`), a command as redis-py's method builds it."""
    if isinstance(step, Lua):
        return ("EVALSHA", SHAS[step.name], len(step.keys), *step.keys, *step.args), {}
    built: Command = getattr(_RECORDER, step.method)(*step.args)
    return built


def _exchange(client: redis.Redis, commands: list[Command]) -> list[Any]:
    """Send ``commands`` in one write on one of ``client``'s connections and read their replies, each as redis-py
    reads it, retried on a new connection as redis-py retries; raise the first reply that is an error.

    redis-py's own pipeline does the same with several times the work per command (its command stack, an
    observability record per step, a Python packer on asyncio connections): half the CPU of a sync send."""
    pool = client.connection_pool
    connection: Any = pool.get_connection()  # redis-py's connections have no type hints
    try:
        replies = connection.retry.call_with_retry(lambda: _sent_and_read(client, connection, commands),
                                                   lambda _error: connection.disconnect())
    finally:
        pool.release(connection)
    return _raised(replies)


def _sent_and_read(client: Any, connection: Any, commands: list[Command]) -> list[Any]:
    connection.send_packed_command([b"".join(packed(args) for args, _options in commands)])
    replies = []
    for args, options in commands:
        try:
            replies.append(client.parse_response(connection, args[0], **options) if _parsed(client, args, options)
                           else connection.read_response())
        except redis.ResponseError as error:  # read on: the replies after it are on the connection too
            replies.append(error)
    return replies


async def _aexchange(client: redis.asyncio.Redis, commands: list[Command]) -> list[Any]:
    """:func:`_exchange` awaited."""
    pool: Any = client.connection_pool
    connection = await pool.get_connection()
    try:
        replies = await connection.retry.call_with_retry(lambda: _asent_and_read(client, connection, commands),
                                                         lambda _error: connection.disconnect())
    finally:
        await pool.release(connection)
    return _raised(replies)


async def _asent_and_read(client: redis.asyncio.Redis, connection: Any, commands: list[Command]) -> list[Any]:
    await connection.send_packed_command([b"".join(packed(args) for args, _options in commands)])
    replies = []
    for args, options in commands:
        try:
            replies.append(await (client.parse_response(connection, args[0], **options)
                                  if _parsed(client, args, options) else connection.read_response()))
        except redis.ResponseError as error:
            replies.append(error)
    return replies


async def _areplies(client: redis.asyncio.Redis, commands: list[Command], piped: bool) -> Any:
    """:meth:`Connections._send` for an asyncio client: the scripts loaded again if Redis forgot them."""
    try:
        replies = await _aexchange(client, commands)
    except redis.exceptions.NoScriptError:
        for source in SCRIPTS.values():
            await client.script_load(source)
        replies = await _aexchange(client, commands)
    return replies if piped else replies[0]


def _parsed(client: Any, args: tuple[Any, ...], options: dict[str, Any]) -> bool:
    """Whether redis-py's reading of a reply changes it (a script's is taken as Redis gives it, without that layer)."""
    return bool(options) or args[0] in client.response_callbacks


def _raised(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies


def _replicated(replies: list[Any], replicas: int) -> list[Any]:
    """The replies of a durable pipeline but its ``WAIT``'s, which must count ``replicas`` replicas."""
    *replies, acknowledged = replies
    if acknowledged < replicas:
        raise StoreUnavailable(f"Redis is unavailable: {acknowledged} of the {replicas} replicas asked for "
                               f"(REDIS_WAIT_REPLICAS) had the write within {WAIT_TIMEOUT_MS} ms; a failover "
                               f"could lose it, so it may or may not be done")
    return replies


async def _areplicated(replies: Awaitable[list[Any]], replicas: int) -> list[Any]:
    return _replicated(await replies, replicas)


class Performer(Protocol):
    async def run(self, steps: Steps[T]) -> T:
        """Run ``steps`` on Redis; raise ``StoreUnavailable`` if Redis cannot be reached or refuses them."""


class Blocking:
    """Runs steps on the blocking client: its ``run`` never suspends (for sync callers)."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    async def run(self, steps: Steps[T]) -> T:
        try:
            return drive(steps, self._perform)
        except REDIS_ERRORS as error:
            raise StoreUnavailable(f"Redis is unavailable: {error}") from error

    def _perform(self, step: Step) -> Any:
        return self.connections.issue(self.connections.blocking, step)


class Awaiting:
    """Runs steps on the running loop's asyncio client (``upkeep``: the node upkeep pool)."""

    def __init__(self, connections: Connections, upkeep: bool = False) -> None:
        self.connections = connections
        self.upkeep = upkeep

    async def run(self, steps: Steps[T]) -> T:
        try:
            return await adrive(steps, self._perform)
        except REDIS_ERRORS as error:
            raise StoreUnavailable(f"Redis is unavailable: {error}") from error

    async def _perform(self, step: Step) -> Any:
        return await self.connections.issue(self.connections.for_loop(self.upkeep), step)


class Part(Protocol):
    """A part of the Redis backend: it runs its steps with its performer."""

    performer: Performer


S = TypeVar("S", bound=Part)


def performed(steps: Callable[Concatenate[S, P], Steps[T]]) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Make a method written as steps into the contract's coroutine method, run by the part's performer."""

    async def method(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.performer.run(steps(self, *args, **kwargs))

    method.__name__, method.__qualname__, method.__doc__ = steps.__name__, steps.__qualname__, steps.__doc__
    return method

