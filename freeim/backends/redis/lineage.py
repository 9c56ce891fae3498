"""Whether the Redis a node writes to still holds what the node wrote.

A failover (or a restart) hands the node a Redis under another replication id (``INFO replication``:
``master_replid``): the new master's data set, which lacks what the old one acknowledged in its last
moments, since replication is asynchronous. The node's registration may well have survived, so its
heartbeat alone would not notice that a connect or a disconnect of those moments is missing. On a Redis
Cluster each master has its id, and a node's presence is on all of them: an id not seen before (a replica
promoted, a master restarted empty, or one added) means the node writes its presence again.
"""

from __future__ import annotations

import time


class Lineage:
    """The replication id each node's presence was written under."""

    def __init__(self, settle: float) -> None:
        #: Seconds from the first sight of another id to the answer that the node must write its presence
        #: again: every pool of the process has asked the sentinels by then (:data:`.pools.MASTER_CHECK`), so
        #: none of its writes goes to the old master after the rebuild.
        self.settle = settle
        self._known: dict[str, set[str]] = {}
        self._changed: dict[str, float] = {}

    def unchanged(self, node: str, replids: set[str]) -> bool:
        """False once, ``settle`` seconds after ``node`` first saw a master under an id it did not know (an id
        that came back meanwhile counts too: writes may be lost both ways); the ids are known from then. A master
        that did not answer is left out of ``replids``: that is no new id."""
        known = self._known.setdefault(node, replids)
        now = time.monotonic()
        if replids - known:
            self._changed.setdefault(node, now)
        changed = self._changed.get(node)
        if changed is None or now - changed < self.settle:
            return True
        del self._changed[node]
        self._known[node] = replids
        return False
