"""Whether the Redis a node writes to still holds what the node wrote.

A failover (or a restart) hands the node a Redis under another replication id (``INFO replication``:
``master_replid``): the new master's data set, which lacks what the old one acknowledged in its last
moments, since replication is asynchronous. The node's registration may well have survived, so its
heartbeat alone would not notice that a connect or a disconnect of those moments is missing.
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
        self._known: dict[str, str] = {}
        self._changed: dict[str, float] = {}

    def unchanged(self, node: str, replid: str) -> bool:
        """False once, ``settle`` seconds after ``node`` first saw Redis under another id than it knew (an
        id that came back meanwhile counts too: writes may be lost both ways); the new id is known from then."""
        known = self._known.setdefault(node, replid)
        now = time.monotonic()
        if replid != known:
            self._changed.setdefault(node, now)
        changed = self._changed.get(node)
        if changed is None or now - changed < self.settle:
            return True
        del self._changed[node]
        self._known[node] = replid
        return False
