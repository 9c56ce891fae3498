"""Lua sources of the Redis store; the key layout they work on is in :mod:`..keys`.

Every script gets each key it touches in ``KEYS`` (none is built from ``ARGV``), reads and
checks all it needs before its first write, so a script that refuses leaves nothing half
done, and is safe to run twice: redis-py retries a command whose reply timed out, after
Redis may have run it. Presence is kept per connection id for that reason.

Where a script needs the keys of chans it only learns about in Redis (the chans of a client,
the members of a chan), the caller declares the ones it expects; if Redis holds others, the
script writes nothing and answers ``{'retry', names...}`` so the caller declares those.
"""

from .inboxes import READ_INBOX, STORE_MESSAGE
from .nodes import FORGET_NODE, HEARTBEAT, MARK_BEAT, NODES_BY_AGE, REAPER_LOCK
from .presence import ATTACH, CLEAR_CHAN, DETACH, JOIN, LEAVE
from .streams import APPEND, ENSURE_GROUP, TRIM_INBOX

SCRIPTS = {
    "attach": ATTACH,
    "detach": DETACH,
    "join": JOIN,
    "leave": LEAVE,
    "clear_chan": CLEAR_CHAN,
    "forget_node": FORGET_NODE,
    "heartbeat": HEARTBEAT,
    "mark_beat": MARK_BEAT,
    "nodes_by_age": NODES_BY_AGE,
    "reaper_lock": REAPER_LOCK,
    "ensure_group": ENSURE_GROUP,
    "append": APPEND,
    "trim_inbox": TRIM_INBOX,
    "store_message": STORE_MESSAGE,
    "read_inbox": READ_INBOX,
}
