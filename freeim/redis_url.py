"""What ``FREEIM['REDIS_URL']`` names: one Redis server, the master that Redis Sentinel watches, or a Redis Cluster.

Pure (no redis-py), so the system checks read it where redis-py is not installed. The forms:

* ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix:///path?db=N``: one server,
  read by redis-py's ``from_url``;
* ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/<service>[/db][?sentinel_password=...]``:
  the sentinels (port 26379 if left out) and the name they monitor the master under (``sentinel monitor
  <service> ...``); the user and password are the master's (and its replicas'), ``sentinel_password`` the
  sentinels' own when they ask for one (``requirepass`` in their configuration);
* ``redis+cluster://[[user]:password@]host[:port][,host[:port]...]``, ``rediss+cluster://...`` (TLS): some nodes
  of a Redis (or Valkey) Cluster (port 6379 if left out), from which the client learns the others and the slots
  each master owns; the user and password are every node's. A cluster has database 0 only, so no path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
CLUSTER_PORT = 6379
#: Each form, for error messages and hints.
FORMS = ("redis://host:6379/0, rediss://... (TLS), unix:///path, "
         "redis+sentinel://[:password@]host:26379[,host:26379...]/<service>[/db], or "
         "redis+cluster://[:password@]host:6379[,host:6379...] (rediss+cluster:// with TLS)")
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^\s:/\[\]]+))(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class SentinelTarget:
    """The master that the sentinels at ``sentinels`` know as ``service``, database ``db``."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


@dataclass(frozen=True)
class ClusterTarget:
    """The Redis Cluster that the nodes at ``nodes`` belong to (any of them will do to find the rest)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse(url: object) -> str | SentinelTarget | ClusterTarget:
    """``url`` itself for one server (redis-py reads it), or its :class:`SentinelTarget` or
    :class:`ClusterTarget`; ``ValueError`` saying what is wrong otherwise."""
    if not isinstance(url, str):
        raise ValueError(f"expected a URL string, not {type(url).__name__}")
    if url.startswith(f"{SENTINEL_SCHEME}://"):
        return _sentinel_target(url)
    scheme, separator, _rest = url.partition("://")
    if separator and scheme in CLUSTER_SCHEMES:
        return _cluster_target(url, tls=scheme == CLUSTER_SCHEMES[1])
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError when out of range, as redis-py would at the first call)
    except ValueError as error:
        raise ValueError(f"it does not parse ({error})") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"the scheme {parts.scheme!r} is not one of redis, rediss, unix, {SENTINEL_SCHEME}, "
                         f"{', '.join(CLUSTER_SCHEMES)}")
    return url


def _split(url: str) -> tuple[str, str, str, str]:
    """The user info, the hosts, the path and the query of a URL that names several hosts (which ``urlsplit``
    does not take)."""
    netloc, _, path_and_query = url.partition("://")[2].partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    path, _, query = path_and_query.partition("?")
    return userinfo, hosts if at else netloc, path, query


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    """The user and the password in ``user:password`` (each optional, percent-decoded)."""
    username, colon, password = userinfo.partition(":")
    return unquote(username) or None, unquote(password) if colon else None


def _cluster_target(url: str, tls: bool) -> ClusterTarget:
    userinfo, hosts, path, _query = _split(url)
    if path or "?" in url:
        raise ValueError("a cluster URL names its nodes only, without a database (a cluster has only 0) nor "
                         "options: redis+cluster://[[user]:password@]host[:port][,host[:port]...]")
    nodes = tuple(_host(entry, CLUSTER_PORT, "node") for entry in hosts.split(","))
    return ClusterTarget(nodes, *_credentials(userinfo), tls=tls)


def _sentinel_target(url: str) -> SentinelTarget:
    userinfo, hosts, path, query = _split(url)
    sentinels = tuple(_host(entry, SENTINEL_PORT, "sentinel") for entry in hosts.split(","))
    segments = path.split("/") if path else []
    if not segments or not segments[0] or len(segments) > 2:
        raise ValueError("it needs the service name the sentinels monitor the master under: "
                         "redis+sentinel://host:26379/<service>[/db]")
    if len(segments) == 2 and not segments[1].isdigit():
        raise ValueError(f"the database {segments[1]!r} is not a number")
    options = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(options) - {"sentinel_password"})
    if unknown:
        raise ValueError(f"unknown option {', '.join(unknown)}: the only one is sentinel_password")
    return SentinelTarget(sentinels, unquote(segments[0]), int(segments[1]) if len(segments) == 2 else 0,
                          *_credentials(userinfo),
                          options["sentinel_password"][-1] if "sentinel_password" in options else None)


def _host(entry: str, default_port: int, what: str) -> tuple[str, int]:
    """``host[:port]`` (``[v6]`` for an IPv6 address) of a ``what``, with ``default_port`` if left out."""
    found = _HOST.match(entry)
    if found is None:
        raise ValueError(f"the {what} {entry!r} is not host[:port]")
    port = int(found["port"] or default_port)
    if not 0 < port < 65536:
        raise ValueError(f"the {what} port {port} is out of range")
    return found["v6"] or found["name"], port


def channels_redis_host(url: str) -> dict[str, object]:
    """``url`` as a host of channels_redis's ``CHANNEL_LAYERS`` config (its Sentinel form for a Sentinel URL),
    so the project's own Channels code follows the same master; redis-py 8's blocking reads need no
    socket timeout. ``ValueError`` for a cluster: channels_redis does not run on Redis Cluster (its group sends
    are scripts over keys in many slots, django/channels#485)."""
    target = parse(url)
    if isinstance(target, str):
        return {"address": target, "socket_timeout": None}
    if isinstance(target, ClusterTarget):
        raise ValueError("channels_redis does not run on Redis Cluster: give CHANNEL_LAYERS a Redis of its own")
    options = {key: value for key, value in (("username", target.username), ("password", target.password))
               if value is not None}
    sentinel_options = {} if target.sentinel_password is None else {"password": target.sentinel_password}
    return {"sentinels": list(target.sentinels), "master_name": target.service, "db": target.db,
            "sentinel_kwargs": sentinel_options, "socket_timeout": None, **options}
