"""Redis work written once for blocking and for awaiting clients: generators of steps.

Each operation of the Redis backend is a generator that yields what Redis must run
(a :class:`Lua` script, a :class:`Cmd`, a :class:`Pipe` of them, a command on
:class:`Everywhere` master) and receives the reply. :func:`drive` performs each step
with a blocking client, :func:`adrive` awaits it on a ``redis.asyncio`` one
(:mod:`.client`), so the logic between the steps (pushing a client's truth to its
chans, reading pages, decoding) exists once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True)
class Lua:
    """Run script ``name`` (:mod:`.lua`) with ``KEYS = keys`` and ``ARGV = args``."""

    name: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Cmd:
    """Run one command: ``client.<method>(*args)``."""

    method: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Pipe:
    """Run ``steps`` in one non-transactional pipeline; the reply is the list of their replies.

    ``durable``: what a caller is told was done, so it must survive a failover: with ``REDIS_WAIT_REPLICAS``,
    the same round trip waits for that many replicas to have it (:meth:`.client.Connections.issue`).
    """

    steps: tuple[Lua | Cmd, ...]
    durable: bool = False


@dataclass(frozen=True)
class Everywhere:
    """Run a keyless command on every master (on one Redis: on it); the reply is the list of their replies, None for
    a master that did not answer. For what is each master's own, such as its replication id."""

    step: Cmd


Step = Lua | Cmd | Pipe | Everywhere
#: An operation: yields steps, receives each reply, returns its result.
Steps = Generator[Step, Any, T]


def one(method: str, *args: Any) -> Cmd:
    return Cmd(method, args)


def drive(steps: Steps[T], perform: Callable[[Step], Any]) -> T:
    """Run ``steps``, performing each with ``perform`` (blocking). Only ``steps`` ending is their end: a
    ``StopIteration`` out of ``perform`` fails them."""
    reply = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as stop:
            return cast(T, stop.value)
        reply = perform(step)


async def adrive(steps: Steps[T], perform: Callable[[Step], Awaitable[Any]]) -> T:
    """Run ``steps``, awaiting ``perform`` for each (as :func:`drive`)."""
    reply = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration as stop:
            return cast(T, stop.value)
        reply = await perform(step)
