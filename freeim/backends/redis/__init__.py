"""The cluster backend: many nodes and business processes sharing one Redis (or one Redis Cluster).

=================  =========================================================
module             owns
=================  =========================================================
:mod:`.keys`       the key layout, written once
:mod:`.lua`        the scripts (presence and chans, node liveness, streams), each atomic, on one slot
:mod:`.steps`      Redis work as generators of steps, run blocking or awaited
:mod:`.pools`      every client freeim opens, of one server, a Sentinel master or a Redis Cluster
:mod:`.client`     running steps on them, waiting for replicas, errors -> ``StoreUnavailable``
:mod:`.cluster`    on a Redis Cluster, each step to the master of its keys, a pipeline split per master
:mod:`.store`      tokens, presence, chans, inboxes
:mod:`.presence`   presence and chans as steps of one slot each, pushed to the chans by version
:mod:`.nodes`      heartbeats, the reaper
:mod:`.lineage`    whether Redis lost a node's writes (a failover)
:mod:`.transport`  one inbox stream per node
:mod:`.events`     the online/offline events streams (one per partition) for ``freeim_events``
=================  =========================================================
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from ...conf import conf
from ..contract import Backend
from .client import Awaiting, Blocking, Connections, Performer
from .events import RedisEvents
from .keys import Keys
from .nodes import RedisNodes
from .store import RedisStore
from .transport import RedisTransport


class RedisBackend(Backend):
    """``FREEIM['BACKEND']`` for a cluster, which ``REDIS_URL`` alone chooses. Options left out come
    from the ``REDIS_URL``, ``REDIS_PREFIX`` and ``HEARTBEAT_TTL`` settings; ``connections`` is the
    class that sends steps to Redis (tests instrument it)."""

    def __init__(self, url: str | None = None, prefix: str | None = None, heartbeat_ttl: float | None = None, *,
                 connections: type[Connections] = Connections) -> None:
        self.url = url or conf.REDIS_URL or ""
        if not self.url:
            raise ImproperlyConfigured("RedisBackend needs a Redis URL: set FREEIM['REDIS_URL'].")
        self.keys = Keys(prefix or conf.REDIS_PREFIX)
        ttl = heartbeat_ttl or conf.HEARTBEAT_TTL
        self.connections = connections(self.url)
        blocking = Blocking(self.connections)
        awaiting = self._assemble(Awaiting(self.connections), Awaiting(self.connections, upkeep=True), ttl)
        super().__init__(awaiting.store, awaiting.nodes, awaiting.transport, events=awaiting.events,
                         heartbeat_ttl=ttl, blocking=self._assemble(blocking, blocking, ttl))

    def _assemble(self, performer: Performer, upkeep: Performer, ttl: float) -> Backend:
        """The parts, each running its steps with ``performer`` (node liveness with ``upkeep``)."""
        return Backend(RedisStore(self.keys, performer), RedisNodes(self.keys, upkeep, ttl),
                       RedisTransport(self.url, self.keys, performer),
                       events=RedisEvents(self.keys, performer, self.connections.cluster), heartbeat_ttl=ttl)

    def flush(self) -> None:
        """Delete every key under the prefix (tests)."""
        client = self.connections.blocking
        keys = list(client.scan_iter(self.keys.everything(), count=1000))
        if keys:
            client.delete(*keys)
