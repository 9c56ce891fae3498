"""Lua sources of the Redis store; the key layout they work on is in :mod:`..keys`.

Every script gets each key it touches in ``KEYS`` (none is built from ``ARGV``), and they all carry one
hash tag: a script runs on one slot, so on one shard of a Redis Cluster. Each reads and checks all it
needs before its first write, so a script that refuses leaves nothing half done, and is safe to run
twice: redis-py retries a command whose reply timed out, after Redis may have run it. Presence is kept
per connection id for that reason. A change that spans owners (a client and its chans, a node and the
registry) is ordered steps of one slot each (:mod:`..presence`, :mod:`..nodes`).
"""

from .chans import PROJECT
from .inboxes import READ_INBOX, STORE_MESSAGE
from .nodes import FORGET_NODE, HEARTBEAT, MARK_BEAT, NODES_BY_AGE
from .presence import ATTACH, DETACH, JOIN, LEAVE, RESYNC, SETTLE
from .streams import APPEND, ENSURE_GROUP, LOCK, TRIM_INBOX, WORKERS

SCRIPTS = {
    "attach": ATTACH,
    "detach": DETACH,
    "join": JOIN,
    "leave": LEAVE,
    "resync": RESYNC,
    "settle": SETTLE,
    "project": PROJECT,
    "forget_node": FORGET_NODE,
    "heartbeat": HEARTBEAT,
    "mark_beat": MARK_BEAT,
    "nodes_by_age": NODES_BY_AGE,
    "lock": LOCK,
    "workers": WORKERS,
    "ensure_group": ENSURE_GROUP,
    "append": APPEND,
    "trim_inbox": TRIM_INBOX,
    "store_message": STORE_MESSAGE,
    "read_inbox": READ_INBOX,
}
