"""Connections to Redis, and the two ways of running steps on them: blocking and awaiting.

The only module that sends commands to Redis (the node's inbox reader aside, :mod:`.transport`).
A blocking client serves sync callers; each event loop gets ``redis.asyncio`` clients of its
own (connections cannot cross loops), so neither side goes through ``async_to_sync``. Redis
errors (unreachable, timed out, or a command refused) become :class:`~freeim.exceptions.StoreUnavailable`
here, in one place.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis
import redis.asyncio
from redis.commands.core import AsyncScript, Script

from ... import measures, redis_url
from ...conf import conf
from ...exceptions import StoreUnavailable
from .lua import SCRIPTS
from .pools import connect
from .steps import Cmd, Lua, Pipe, Step, Steps, adrive, drive

T = TypeVar("T")
P = ParamSpec("P")
#: What Redis fails with: unreachable, timed out, or refusing the command (out of memory, a replica that takes no
#: writes, a bad database index); scripts that Redis forgot are loaded again before this (:meth:`Connections.issue`).
REDIS_ERRORS = (redis.RedisError,)
#: How long a durable step waits for its replicas (``REDIS_WAIT_REPLICAS``) before it fails.
WAIT_TIMEOUT_MS = 1000
#: Seconds an awaited step may take, its retries included, before it fails (a blocking one: each read's socket
#: timeout, :func:`.pools.pool_options`).
STEP_TIMEOUT = 5.0


class Connections:
    """One blocking client for the process, and per event loop an asyncio client for the work
    and one for node upkeep (a small pool of its own, so a storm of connects cannot starve the
    heartbeats)."""

    def __init__(self, url: str) -> None:
        self.url = url
        #: With Sentinel, sends wait for one replica unless ``REDIS_WAIT_REPLICAS`` says otherwise.
        self.sentinel = not isinstance(redis_url.parse(url), str)
        self.blocking = connect(url)
        self.blocking_scripts = {name: Script(self.blocking, source) for name, source in SCRIPTS.items()}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                               dict[bool, tuple[redis.asyncio.Redis, dict[str, AsyncScript]]]] = \
            weakref.WeakKeyDictionary()

    def for_loop(self, upkeep: bool) -> tuple[redis.asyncio.Redis, dict[str, AsyncScript]]:
        """The running loop's client (the upkeep one if ``upkeep``) and its scripts.

        Its reads have no timeout of their own: redis-py's asyncio connection arms one per reply (a timer
        handle made and cancelled: a sixth of a send's CPU in a pipeline of replies), so each step is given
        :data:`STEP_TIMEOUT` as a whole instead (:func:`_measured`)."""
        clients = self._loops.setdefault(asyncio.get_running_loop(), {})
        found = clients.get(upkeep)
        if found is None:
            client = connect(self.url, asynchronous=True, socket_timeout=None,
                             **({"max_connections": 2} if upkeep else {}))
            found = clients[upkeep] = (client, {name: AsyncScript(client, source) for name, source in SCRIPTS.items()})
        return found

    def wait_replicas(self) -> int:
        """The replicas a durable step waits for: ``REDIS_WAIT_REPLICAS``, by default 1 with Sentinel, else 0."""
        replicas = conf.REDIS_WAIT_REPLICAS
        return (1 if self.sentinel else 0) if replicas is None else replicas

    def issue(self, client: Any, scripts: dict[str, Any], step: Step) -> Any:
        """Send ``step`` through ``client`` (one of these): its reply, or an awaitable of it for an
        asyncio client. Every step goes to Redis through here, once: each is timed, and counted if it
        fails, by its kind (:func:`kind`). A durable pipeline ends with ``WAIT`` for :meth:`wait_replicas`."""
        if isinstance(step, Pipe) and step.durable and (replicas := self.wait_replicas()):
            reply = self.issue(client, scripts, Pipe((*step.steps, Cmd("wait", (replicas, WAIT_TIMEOUT_MS)))))
            return _areplicated(reply, replicas) if inspect.isawaitable(reply) else _replicated(reply, replicas)
        started = perf_counter()
        try:
            reply = self._send(client, scripts, step)
        except REDIS_ERRORS as error:
            _measure(step, started, error)
            raise
        if inspect.isawaitable(reply):
            return _measured(reply, step, started)
        _measure(step, started)
        return reply

    def _send(self, client: Any, scripts: dict[str, Any], step: Step) -> Any:
        if isinstance(step, Pipe) and len(step.steps) == 1:  # in redis-py a pipeline of one costs several
            reply = _single(client, scripts, step.steps[0])  # times the plain command
            return _as_list(reply) if inspect.isawaitable(reply) else [reply]
        if not isinstance(step, Pipe):
            return _single(client, scripts, step)
        if isinstance(client, redis.asyncio.Redis):
            return _apiped(client, scripts, step)
        try:
            return _piped(client, scripts, step)
        except redis.exceptions.NoScriptError:
            for script in scripts.values():
                client.script_load(script.script)
            return _piped(client, scripts, step)


def kind(step: Step) -> str:
    """What :data:`~freeim.measures.REDIS_SECONDS` calls ``step``: a script's name, a command's, or
    ``pipeline:<its first step's>`` (a pipeline of one is sent as that one)."""
    if isinstance(step, Pipe):
        return kind(step.steps[0]) if len(step.steps) == 1 else f"pipeline:{kind(step.steps[0])}"
    return step.name if isinstance(step, Lua) else step.method


def _measure(step: Step, started: float, error: BaseException | None = None) -> None:
    what = kind(step)
    measures.REDIS_SECONDS.observe(perf_counter() - started, what)
    if error is not None:
        measures.REDIS_ERRORS.inc(what, type(error).__name__)


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


def _piped(client: Any, scripts: dict[str, Any], step: Pipe) -> Any:
    """``step`` as one pipeline. Its scripts go by their SHA alone: redis-py would ask Redis whether it
    knows them (``SCRIPT EXISTS``, one more round trip) before every pipeline that has one. Redis
    forgets them only when it restarts; the caller loads them then and sends the pipeline again, which
    every step in one is safe to (:mod:`.lua`)."""
    pipe = client.pipeline(transaction=False)
    for inner in step.steps:
        if isinstance(inner, Lua):
            pipe.evalsha(scripts[inner.name].sha, len(inner.keys), *inner.keys, *inner.args)
        else:
            getattr(pipe, inner.method)(*inner.args)
    return pipe.execute()


async def _apiped(client: redis.asyncio.Redis, scripts: dict[str, Any], step: Pipe) -> Any:
    """:func:`_piped` awaited, the scripts loaded again if Redis forgot them."""
    try:
        return await _piped(client, scripts, step)
    except redis.exceptions.NoScriptError:
        for script in scripts.values():
            await client.script_load(script.script)
        return await _piped(client, scripts, step)


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


def _single(client: Any, scripts: dict[str, Any], step: Lua | Cmd) -> Any:
    if isinstance(step, Lua):
        return scripts[step.name](keys=step.keys, args=step.args, client=client)
    return getattr(client, step.method)(*step.args)


async def _as_list(reply: Awaitable[Any]) -> list[Any]:
    return [await reply]


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
        return self.connections.issue(self.connections.blocking, self.connections.blocking_scripts, step)


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
        return await self.connections.issue(*self.connections.for_loop(self.upkeep), step)


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

