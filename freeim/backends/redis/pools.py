"""Every Redis client freeim opens is built here, by :func:`connect`, from ``REDIS_URL``
(:mod:`freeim.redis_url`): one server, the master that Redis Sentinel watches, or a Redis Cluster.

The Sentinel pools are redis-py's (``redis.sentinel``, ``redis.asyncio.sentinel``: discovery, and a
connection that meets ``READONLY`` on a demoted master reconnects to the new one), made to wait for a
free connection as :func:`pool_options` asks, and to ask the sentinels again at most every
:data:`MASTER_CHECK` seconds when they hand out a connection. redis-py asks only when it opens a
connection, so a pool whose connections stay open would go on writing to a master the sentinels
replaced until that master is demoted (measured here: 10 s after a ``SENTINEL FAILOVER``); everything
written there meanwhile is lost.

A cluster's clients are redis-py's ``RedisCluster`` (blocking and asyncio), for what they know: the nodes,
which master owns each slot, and a pool of connections per node. freeim's steps go to those pools through
:mod:`.cluster`, which routes each to the master of its keys.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any, ClassVar, Literal, overload

import hiredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis._parsers import AsyncCommandsParser, CommandsParser  # what redis-py's cluster clients import
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ...redis_url import ClusterTarget, SentinelTarget, parse

#: Seconds between two questions to the sentinels about where the master is, per pool, while it is used.
MASTER_CHECK = 1.0
#: What asking the sentinels may fail with; the pool then keeps the master it knows.
_SENTINELS_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


def pool_options(asynchronous: bool = False) -> dict[str, Any]:
    """Connection settings for a pool (of ``redis.asyncio`` if ``asynchronous``): wait for a free
    connection, fail in seconds, not minutes.

    A command that fails on a broken connection or times out is sent again on a new connection,
    twice at most: after a Redis restart or a failover every pooled connection is dead, and each
    would otherwise fail one call. A command may then run twice; every script is safe to (:mod:`.lua`).
    The asyncio client needs redis-py's asyncio ``Retry``: given the blocking one, it retried nothing.
    """
    retry = (AsyncRetry if asynchronous else Retry)(ExponentialBackoff(cap=0.5, base=0.05), 2)
    return {"max_connections": 64, "timeout": 5, "decode_responses": True, "socket_connect_timeout": 2,
            "socket_timeout": 5, "retry": retry}


class _MasterCheck:
    """When a Sentinel pool asks the sentinels where the master is, besides when it opens a connection."""

    def __init__(self) -> None:
        self._checked = 0.0

    def due(self) -> bool:
        """True at most every :data:`MASTER_CHECK` seconds."""
        now = time.monotonic()
        if now - self._checked < MASTER_CHECK:
            return False
        self._checked = now
        return True


class BlockingSentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool that waits for a free connection and follows a failover (module docstring)."""

    def __init__(self, service: str, sentinels: redis.sentinel.Sentinel, **options: Any) -> None:
        redis.sentinel.SentinelConnectionPool.__init__(self, service, sentinels, **options)  # and on along the MRO
        self.master_check = _MasterCheck()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.master_check.due():
            with contextlib.suppress(*_SENTINELS_UNREACHABLE):  # a new address drops the idle connections, and
                redis.sentinel.SentinelConnectionPool.get_master_address(self)  # those in use as they come back
        # Called on the class: redis-py's pools have no type hints, and mypy flags calls through super().
        return redis.BlockingConnectionPool.get_connection(self, *args, **kwargs)  # type: ignore[no-untyped-call]


class AsyncBlockingSentinelPool(redis.asyncio.sentinel.SentinelConnectionPool, redis.asyncio.BlockingConnectionPool):
    """:class:`BlockingSentinelPool` for ``redis.asyncio``."""

    def __init__(self, service: str, sentinels: redis.asyncio.sentinel.Sentinel, **options: Any) -> None:
        redis.asyncio.sentinel.SentinelConnectionPool.__init__(self, service, sentinels, **options)
        self.master_check = _MasterCheck()

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.master_check.due():
            with contextlib.suppress(*_SENTINELS_UNREACHABLE):
                await redis.asyncio.sentinel.SentinelConnectionPool.get_master_address(self)
        pool = redis.asyncio.BlockingConnectionPool
        return await pool.get_connection(self, *args, **kwargs)  # type: ignore[no-untyped-call]


def packed(args: tuple[Any, ...]) -> bytes:
    """A command in Redis's protocol, packed by hiredis in C (redis-py packs an asyncio connection's commands in
    Python: 19 µs against 2 µs for the script call of a private message)."""
    if isinstance(args[0], str) and " " in args[0]:  # 'XINFO GROUPS': Redis takes the words apart
        args = (*args[0].split(), *args[1:])
    command: bytes = hiredis.pack_command(args)
    return command


class _PackedInC:
    """Packs commands with :func:`packed`, as redis-py's blocking connections do when hiredis is installed."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return [packed(args)]


@functools.cache
def _packed_in_c(connection_class: type) -> type:
    """``connection_class`` (plain, TLS, Unix socket, Sentinel-managed) packing with :class:`_PackedInC`."""
    return type(connection_class.__name__, (_PackedInC, connection_class), {})


def _asynchronous(pool: Any) -> redis.asyncio.Redis:
    pool.connection_class = _packed_in_c(pool.connection_class)
    return redis.asyncio.Redis.from_pool(pool)


#: A client of one server (or of a Sentinel master), or of a cluster; blocking, or of ``redis.asyncio``.
Client = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


@overload
def connect(url: str, asynchronous: Literal[False] = False, **overrides: Any) -> Client: ...
@overload
def connect(url: str, asynchronous: Literal[True], **overrides: Any) -> AsyncClient: ...


def connect(url: str, asynchronous: bool = False, **overrides: Any) -> Client | AsyncClient:
    """A client (of ``redis.asyncio`` if ``asynchronous``) of the Redis ``url`` names, with a pool of its own
    built with :func:`pool_options` and ``overrides`` (a cluster's: one per node); closing the client closes the
    pool."""
    options = {**pool_options(asynchronous), **overrides}
    target = parse(url)
    if isinstance(target, ClusterTarget):
        return _cluster(target, asynchronous, options)
    if isinstance(target, str):
        if asynchronous:
            return _asynchronous(redis.asyncio.BlockingConnectionPool.from_url(target, **options))
        return redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(target, **options))
    master = {"db": target.db, "username": target.username, "password": target.password, **options}
    if asynchronous:
        sentinels = redis.asyncio.sentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinel_options(target))
        return _asynchronous(AsyncBlockingSentinelPool(target.service, sentinels, **master))
    blocking = redis.sentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinel_options(target))
    return redis.Redis.from_pool(BlockingSentinelPool(target.service, blocking, **master))


def _cluster(target: ClusterTarget, asynchronous: bool,
             options: dict[str, Any]) -> redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster:
    """A cluster client with ``options`` for each node's pool; ``retry`` is redis-py's own routing's (its
    commands: the inbox reader's ``XREAD``), as :mod:`.cluster` retries freeim's steps itself.

    It tolerates slots that no master serves (``require_full_coverage``): while a master fails over, the
    steps on the other masters' slots go on. The blocking client asks the cluster for its slots as it is made
    (``RedisClusterException`` when no node answers), the asyncio one at its first command. The asyncio client's
    nodes have no blocking pool: they refuse a connection past ``max_connections``, and :mod:`.cluster` makes
    steps wait for one instead, as ``timeout`` asks."""
    credentials: dict[str, Any] = {"username": target.username, "password": target.password}
    if asynchronous:
        options.pop("timeout")
        nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in target.nodes]
        client = redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, require_full_coverage=False, ssl=target.tls,
                                                    **credentials, **options)
        # The nodes it discovers are made with these: redis-py's own commands are packed in C too.
        client.connection_kwargs["connection_class"] = _packed_in_c(client.connection_kwargs["connection_class"])
        client.commands_parser = _AsyncKeysFound()  # filled when the client first asks the cluster
        return client
    # A pool of redis-py's choosing unless the first node comes as a URL: then each node's is a blocking one.
    (host, port), *others = target.nodes
    first = f"{'rediss' if target.tls else 'redis'}://{host if ':' not in host else f'[{host}]'}:{port}"
    startup = [redis.cluster.ClusterNode(*node) for node in others]
    blocking = redis.cluster.RedisCluster(url=first, startup_nodes=startup, require_full_coverage=False,
                                          connection_pool_class=redis.BlockingConnectionPool, **credentials, **options)
    blocking.commands_parser.__class__ = _KeysFound  # made and filled by the client: the same, finding more keys
    return blocking


def found_keys(args: tuple[Any, ...]) -> list[str] | None | Literal[False]:
    """The keys of the commands freeim sends whose keys are not at fixed places, found here: redis-py's command parser
    asks the server where they are (``COMMAND GETKEYS``, a round trip: two per ``XREAD`` of a node's inbox reader),
    and fails on ``WAIT`` (a command with subcommands, its first argument a number). None for no keys, False for a
    command whose keys the parser finds itself."""
    name = args[0]
    if name in ("EVALSHA", "EVAL"):
        return [str(key) for key in args[3:3 + int(args[2])]] or None
    if name in ("XREAD", "XREADGROUP"):
        for index, word in enumerate(args):  # redis-py writes STREAMS as bytes
            if (word.decode() if isinstance(word, bytes) else str(word)).upper() == "STREAMS":
                streams = args[index + 1:]
                return [str(key) for key in streams[:len(streams) // 2]]
        raise redis.DataError(f"{name} names no stream: {args!r}")
    return None if name == "WAIT" else False


class _KeysFound(CommandsParser):
    """redis-py's command parser, with the keys of :func:`found_keys` found without asking the server."""

    def get_keys(self, redis_conn: Any, *args: Any) -> Any:
        found = found_keys(args)
        return super().get_keys(redis_conn, *args) if found is False else found  # type: ignore[no-untyped-call]


class _AsyncKeysFound(AsyncCommandsParser):
    """:class:`_KeysFound` for the asyncio cluster client, whose table of where commands keep their keys is asked of
    the cluster once per process: each event loop has clients of its own, and ``COMMAND``'s reply took ~20 ms of CPU
    to read for each (a loop per request under ``async_to_sync`` would pay it every time)."""

    #: The table the process's first asyncio cluster client read.
    read_once: ClassVar[dict[str, Any] | None] = None

    async def initialize(self, node: Any = None) -> None:
        if node is not None:
            self.node = node
        if _AsyncKeysFound.read_once is None:
            await super().initialize()
            _AsyncKeysFound.read_once = self.commands
        self.commands = _AsyncKeysFound.read_once

    async def get_keys(self, *args: Any) -> Any:
        found = found_keys(args)
        return await super().get_keys(*args) if found is False else found


def _sentinel_options(target: SentinelTarget) -> dict[str, Any]:
    """How to reach the sentinels: fail in seconds, as with the master (redis-py would wait forever)."""
    options: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 2}
    if target.sentinel_password is not None:
        options["password"] = target.sentinel_password
    return options
