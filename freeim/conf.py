"""The ``FREEIM`` settings dict, read lazily so ``override_settings`` works.

Every property reads the ``settings.FREEIM`` dict on access; the dict itself is looked up once and again
after Django says a setting changed (``setting_changed``: ``override_settings``, pytest-django's
``settings``), as DRF does with its own settings: Django's lazy settings object costs a send a few µs
per look-up otherwise. :mod:`freeim.checks` validates the values and reports problems as system checks.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, cast

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "SERVERS": [],
    "SERVER": None,
    "BACKEND": None,
    "BACKEND_OPTIONS": {},
    "REDIS_URL": None,
    "REDIS_PREFIX": "freeim",
    "REDIS_WAIT_REPLICAS": None,
    "HEARTBEAT_TTL": 10,
    "DRAIN_GRACE": 10,
    "PATH": "/ws",
    "TOKEN_TTL": 30,
    "ROUTING": "rendezvous",
    "CLIENT_ID_RESOLVER": "freeim.auth.user_client_id",
    "MAX_MESSAGE_BYTES": 65536,
    "MAX_BACKLOG_BYTES": 1048576,
    "GC_FREEZE": True,
    "HISTORY": None,
    "JSON_ENCODER": "django.core.serializers.json.DjangoJSONEncoder",
    "HEALTH_PATH": "/freeim/health",
    "HEALTH_MAX_LOOP_LAG": 1.0,
    "METRICS_PATH": "/freeim/metrics",
    "METRICS_TOKEN": None,
    "MAX_CLIENT_ID_LENGTH": 128,
    "MAX_CHANS_PER_CLIENT": 100,
    "MAX_CONNECTIONS_PER_CLIENT": 20,
    "MAX_FANOUT_BYTES": 8 * 1024 * 1024,
    "TRANSPORT_MAX_BYTES": 64 * 1024 * 1024,
    "MAX_INBOUND_RATE": 20,
    "HANDSHAKE_TIMEOUT": 10,
    "INBOX_MAX_MESSAGES": 1000,
    "INBOX_MAX_BYTES": 1024 * 1024,
    "INBOX_MAX_AGE": 86400,
}
EMBEDDED_SERVER = "local"
MEMORY_BACKEND = "freeim.backends.memory.MemoryBackend"
REDIS_BACKEND = "freeim.backends.redis.RedisBackend"
DATABASE_HISTORY = "freeim.history.store.ModelHistory"


class Settings:
    """Typed access to ``settings.FREEIM`` with defaults."""

    _raw: dict[str, Any] | None = None

    @property
    def raw(self) -> dict[str, Any]:
        found = self._raw
        if found is None:
            value = getattr(settings, "FREEIM", {})
            found = self._raw = value if isinstance(value, dict) else {}
        return found

    def forget(self, **changed: Any) -> None:
        """Look ``settings.FREEIM`` up again (a ``setting_changed`` receiver)."""
        self._raw = None

    def _get(self, key: str) -> Any:
        return self.raw.get(key, DEFAULTS[key])

    @property
    def SERVERS(self) -> list[str]:
        """Node entries: ``host:port`` or a ``ws://`` / ``wss://`` base URL."""
        return list(self._get("SERVERS") or [])

    @property
    def SERVER(self) -> str:
        """This process's node name: ``SERVER``, else ``$FREEIM_SERVER``; else, in the embedded
        mode, the only ``SERVERS`` entry. In a cluster a process without a name is a business
        process, even with one node: guessing would make every business process that node too."""
        value = self._get("SERVER") or os.environ.get("FREEIM_SERVER")
        if value:
            return str(value)
        servers = self.SERVERS
        return servers[0] if len(servers) == 1 and self.EMBEDDED else EMBEDDED_SERVER

    @property
    def IS_NODE(self) -> bool:
        """Whether this process holds WebSockets: always in the embedded mode; in a cluster when
        ``SERVER`` is one of ``SERVERS`` (business processes are not nodes)."""
        return self.EMBEDDED or self.SERVER in self.SERVERS

    @property
    def BACKEND(self) -> str:
        """Dotted path to the :class:`~freeim.backends.contract.Backend` class: the Redis one when
        ``REDIS_URL`` is set, else the embedded (in-process) one."""
        return cast(str, self._get("BACKEND")) or (REDIS_BACKEND if self.REDIS_URL else MEMORY_BACKEND)

    @property
    def BACKEND_OPTIONS(self) -> dict[str, Any]:
        """Keyword arguments for the ``BACKEND`` class."""
        return dict(self._get("BACKEND_OPTIONS") or {})

    @property
    def EMBEDDED(self) -> bool:
        """Whether one process holds every connection (the in-process backend)."""
        return self.BACKEND == MEMORY_BACKEND

    @property
    def REDIS_URL(self) -> str | None:
        return cast(str | None, self._get("REDIS_URL")) or None

    @property
    def REDIS_PREFIX(self) -> str:
        return cast(str, self._get("REDIS_PREFIX"))

    @property
    def REDIS_WAIT_REPLICAS(self) -> int | None:
        """Replicas that must have a send before the call returns (Redis ``WAIT``); 0: none; None: 1 with a
        Sentinel URL, else 0 (:class:`freeim.backends.redis.client.Connections` decides)."""
        return cast(int | None, self._get("REDIS_WAIT_REPLICAS"))

    @property
    def HEARTBEAT_TTL(self) -> float:
        """Seconds a node stays registered without a heartbeat; nodes beat every fifth of it."""
        return cast(float, self._get("HEARTBEAT_TTL"))

    @property
    def DRAIN_GRACE(self) -> float:
        """Seconds a node that is told to stop (SIGTERM) waits for its terminals to come back on other nodes;
        until then their presence stays as it was (no offline, no online). 0: it stops at once, and its clients go
        offline with it."""
        return cast(float, self._get("DRAIN_GRACE"))

    @property
    def PATH(self) -> str:
        return cast(str, self._get("PATH"))

    @property
    def TOKEN_TTL(self) -> int:
        return cast(int, self._get("TOKEN_TTL"))

    @property
    def ROUTING(self) -> str:
        return cast(str, self._get("ROUTING"))

    @property
    def CLIENT_ID_RESOLVER(self) -> str:
        return cast(str, self._get("CLIENT_ID_RESOLVER"))

    @property
    def MAX_MESSAGE_BYTES(self) -> int:
        return cast(int, self._get("MAX_MESSAGE_BYTES"))

    @property
    def MAX_BACKLOG_BYTES(self) -> int:
        return cast(int, self._get("MAX_BACKLOG_BYTES"))

    @property
    def HISTORY(self) -> str | None:
        """Dotted path to the :class:`freeim.history.History` class that keeps messages; None: none kept."""
        return cast(str | None, self._get("HISTORY")) or None

    @property
    def JSON_ENCODER(self) -> str:
        """Dotted path to the ``json.JSONEncoder`` subclass that encodes messages (Django's by default: datetimes,
        decimals, UUIDs and lazy strings become text, as in Django's own JSON responses)."""
        return cast(str, self._get("JSON_ENCODER"))

    @property
    def HEALTH_PATH(self) -> str | None:
        """Where a node answers its probes: ``<path>/live`` and ``<path>/ready``; None: nowhere."""
        return cast(str | None, self._get("HEALTH_PATH"))

    @property
    def METRICS_PATH(self) -> str | None:
        """Where a node answers Prometheus scrapes (with prometheus-client installed); None: nowhere."""
        return cast(str | None, self._get("METRICS_PATH"))

    @property
    def METRICS_TOKEN(self) -> str | None:
        """The bearer token :func:`freeim.metrics.view` asks of a scrape; None: the view answers 404 to all."""
        return cast(str | None, self._get("METRICS_TOKEN")) or None

    @property
    def HEALTH_MAX_LOOP_LAG(self) -> float:
        """Seconds of loop lateness past which a node is not ready."""
        return cast(float, self._get("HEALTH_MAX_LOOP_LAG"))

    @property
    def MAX_CLIENT_ID_LENGTH(self) -> int:
        """Longest client id, in characters: of a string id, and of an int one in decimal, its sign included
        (at most 128)."""
        return cast(int, self._get("MAX_CLIENT_ID_LENGTH"))

    @property
    def MAX_CHANS_PER_CLIENT(self) -> int:
        """How many chans one client may be in at once; a join past it raises ``TooManyChans``."""
        return cast(int, self._get("MAX_CHANS_PER_CLIENT"))

    @property
    def MAX_CONNECTIONS_PER_CLIENT(self) -> int:
        """How many sockets one client id may hold at once; more are closed with 4006."""
        return cast(int, self._get("MAX_CONNECTIONS_PER_CLIENT"))

    @property
    def MAX_FANOUT_BYTES(self) -> int:
        """Bytes one send may put in flight: encoded message x receivers (``FanoutTooLarge``, HTTP 413)."""
        return cast(int, self._get("MAX_FANOUT_BYTES"))

    @property
    def TRANSPORT_MAX_BYTES(self) -> int:
        """Bytes a node's inbox stream in Redis may hold; the oldest entries are trimmed past it."""
        return cast(int, self._get("TRANSPORT_MAX_BYTES"))

    @property
    def MAX_INBOUND_RATE(self) -> int:
        """Frames per second a terminal may send (a burst of as many is allowed); faster closes with 4005."""
        return cast(int, self._get("MAX_INBOUND_RATE"))

    @property
    def HANDSHAKE_TIMEOUT(self) -> float:
        """Seconds an HTTP request or WebSocket handshake may take before the server drops it."""
        return cast(float, self._get("HANDSHAKE_TIMEOUT"))

    @property
    def INBOX_MAX_MESSAGES(self) -> int:
        """Messages a client's inbox keeps for it to catch up on; the oldest go first."""
        return cast(int, self._get("INBOX_MAX_MESSAGES"))

    @property
    def INBOX_MAX_BYTES(self) -> int:
        """Bytes of messages a client's inbox keeps; the oldest go first."""
        return cast(int, self._get("INBOX_MAX_BYTES"))

    @property
    def INBOX_MAX_AGE(self) -> int:
        """Seconds a message stays in its receiver's inbox."""
        return cast(int, self._get("INBOX_MAX_AGE"))

    @property
    def GC_FREEZE(self) -> bool:
        """Whether a node freezes what it holds out of the garbage collector's way (:mod:`freeim.node.heap`)."""
        return cast(bool, self._get("GC_FREEZE"))


conf = Settings()
setting_changed.connect(conf.forget, dispatch_uid="freeim.conf")


class IncomingRequest(Protocol):
    """What a connect URL can be derived from: Django's ``HttpRequest`` or DRF's ``Request``."""

    def is_secure(self) -> bool: ...
    def get_host(self) -> str: ...


def request_base(request: IncomingRequest) -> str:
    """The WebSocket base URL of the scheme and host ``request`` came in on (behind a TLS proxy, Django's
    ``SECURE_PROXY_SSL_HEADER`` makes it ``wss``)."""
    return f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}"


def server_base(entry: str) -> str:
    """The WebSocket base URL of a ``SERVERS`` entry (``host:port`` means ``ws://host:port``)."""
    return entry.rstrip("/") if "://" in entry else f"ws://{entry}"
