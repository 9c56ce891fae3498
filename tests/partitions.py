"""Reading what the Redis backend keeps per partition (online sets, events streams) as one, for assertions."""

from __future__ import annotations

from typing import Any

import redis

from freeim.backends.redis.keys import PARTITIONS, Keys


def events(store: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    """The fields of every online/offline event kept, in the order of their entry ids (Redis's time of each):
    events of one client are in their order; of two clients in one millisecond, in no particular one."""
    found = []
    for part in range(PARTITIONS):
        for entry_id, fields in store.xrange(keys.clients(part, "events")):
            ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
            found.append(((int(ms), int(seq), part), fields))
    return [fields for _order, fields in sorted(found, key=lambda item: item[0])]


def groups(store: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """``XINFO GROUPS`` of every partition's events stream that exists."""
    streams = [keys.clients(part, "events") for part in range(PARTITIONS)]
    return [group for stream in streams if store.exists(stream) for group in store.xinfo_groups(stream)]

