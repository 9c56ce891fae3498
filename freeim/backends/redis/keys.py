"""The Redis key layout, written once: every key freeim reads or writes is named here.

Keys are ``<prefix>:{<tag>}:<what>``. The braces hold the hash tag Redis Cluster places a key by, and every
script touches keys of one tag only (:mod:`.lua`), so each runs on one shard. A client's keys carry the tag of
its *partition* (one of :data:`PARTITIONS`, from its id), and so do its partition's online set and events
stream: the script that takes a client online writes all three at once. A chan's keys carry its partition's
tag with the partition's chan list; a node's keys its own tag ``{n:<node>}``; ``{g}`` holds the few keys of
the node registry. Partition tags are chosen so that partition ``p`` falls in the ``p``-th equal range of Redis
Cluster's slots: shards holding equal slot ranges hold equal shares of the clients.

Ids are percent-encoded (:func:`urllib.parse.quote`, nothing kept), so they contain no ``:``, ``{``, ``}`` or
``%``: a client id, chan name or node name, whatever it holds, can never spell another key's name (``freeim.E011``
keeps braces out of the prefix). Every script receives the keys it touches in ``KEYS``.

=================================  =======  ===========================================================
key                                type     holds
=================================  =======  ===========================================================
``p:tok:<token>``                  string   a connect token's JSON record (``SET EX``; ``GETDEL``)
``p:{g}:nodes``                    zset     node -> last heartbeat (Redis server time, ms)
``p:{g}:reaper``                   string   the node reaping dead peers now (``NX PX``)
``p:{g}:draining``                 set      the nodes that drain: connect sends no new terminal there
``p:{g}:workers:<group>:alive``    zset     worker -> its last read (ms), the ``freeim_events`` workers of a group
``p:{g}:workers:<group>:wake``     list     pushed to when partitions are given up: wakes the workers waiting for one
``p:{n:<node>}:alive``             string   the node process's boot id (``PX`` heartbeat TTL)
``p:{n:<node>}:health``            string   its health report (JSON) from its last beat (``PX`` heartbeat TTL)
``p:{n:<node>}:conns``             hash     connection id -> client id, the node's sockets
``p:{n:<node>}:metas``             hash     connection id -> its meta (when not empty), for the reaper's offline events
``p:{n:<node>}:inbox``             stream   payload batches for the node (bounded in age and bytes)
``p:{n:<node>}:inbox-sz``          string   bytes held by the inbox's entries
``p:{n:<node>}:inbox-ix``          list     ``"<entry id> <bytes>"`` per inbox entry, oldest first
``p:{c<P>}:online``                set      the online client ids of partition P
``p:{c<P>}:events``                stream   online/offline events of partition P's clients, for ``freeim_events``
``p:{c<P>}:dirty``                 zset     client -> version whose pushes to its chans are not settled yet
``p:{c<P>}:events:lease:<group>``  string   the worker of ``group`` reading partition P's events now (``PX``)
``p:{c<P>}:<client>:conns``        hash     connection id -> node, the client's sockets
``p:{c<P>}:<client>:chans``        set      the client's chans
``p:{c<P>}:<client>:left``         set      the chans it left, or was in when it went offline (for a while)
``p:{c<P>}:<client>:ver``          string   its last version: Redis's time in µs when its presence last changed
``p:{c<P>}:<client>:inbox``        stream   the client's private messages (offset, size, message id, frame)
``p:{c<P>}:<client>:inbox-meta``   hash     epoch ``e``, newest offset ``t``, bytes held ``b``, oldest entry's ms ``f``,
                                            when the inbox's key lives were last set ``x`` (ms)
``p:{c<P>}:<client>:inbox-ids``    hash     message id -> "<offset> <receipt to>" of each message kept
``p:{h<P>}:chans``                 zset     chan -> member count, the chans of partition P
``p:{h<P>}:<chan>:members``        hash     client -> its record, JSON: its version, and its nodes while a member
``p:{h<P>}:<chan>:ended``          zset     client -> when its record ended (ms), to drop it later
``p:{h<P>}:<chan>:nodes``          hash     node -> members of the chan connected there
``p:{h<P>}:<chan>:stream``         stream   the chan's messages, an inbox its members share (as a client's ``inbox``)
``p:{h<P>}:<chan>:stream-meta``    hash     as a client's ``inbox-meta``
``p:{h<P>}:<chan>:stream-ids``     hash     as a client's ``inbox-ids``
=================================  =======  ===========================================================

(``{c<P>}`` stands for partition P's tag, :func:`partition_tag`.) Presence is kept per connection id, never as a
counter, so a script that Redis ran but whose reply was lost, and that redis-py's retry then sends again,
changes nothing the second time.
"""

from __future__ import annotations

import binascii
import functools
import re
import zlib
from urllib.parse import quote

#: Partitions of the clients, and of the chans: fixed, since every key's name depends on it (changing it would
#: orphan what Redis holds). More than any shard count freeim will meet; a global view reads one key per partition.
PARTITIONS = 128
#: Redis Cluster's hash slots.
SLOTS = 16384
#: What percent-encoding leaves as it is: text made only of these is its own encoding.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


def encoded(value: object) -> str:
    """``value`` as a key segment: percent-encoded, so it holds no ``:``, braces or ``%`` of its own."""
    text = str(value)
    return text if _UNRESERVED(text) else _quoted(text)  # the common case without quote's cost


@functools.lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    """Kept: a node's name is a URL, quoted for its inbox's keys in every send (a tenth of a sync send's CPU)."""
    return quote(text, safe="")


def partition(value: object) -> int:
    """The partition of a client id or a chan name (of its key segment, so ``42`` and ``"42"`` share one)."""
    return _partition_of(encoded(value))


def _partition_of(segment: str) -> int:
    return zlib.crc32(segment.encode()) % PARTITIONS


def slot(tag: str) -> int:
    """The Redis Cluster slot of a key whose hash tag is ``tag`` (CRC16/XMODEM, as Redis computes it)."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


@functools.cache
def partition_tag(kind: str, part: int) -> str:
    """The hash tag of partition ``part`` of clients (``kind`` ``c``) or chans (``h``): ``<kind><part>``, with
    the first ``.<n>`` suffix that puts it in the ``part``-th of :data:`PARTITIONS` equal ranges of slots."""
    width = SLOTS // PARTITIONS
    tag, suffix = f"{kind}{part}", 0
    while slot(tag) // width != part:
        suffix += 1
        tag = f"{kind}{part}.{suffix}"
    return tag


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _key(self, tag: str, what: str) -> str:
        return f"{self.prefix}:{{{tag}}}:{what}"

    def token(self, token: str) -> str:
        return f"{self.prefix}:tok:{encoded(token)}"

    def shared(self, what: str) -> str:
        """A key of the node registry: ``nodes``, ``reaper`` or ``draining``."""
        return self._key("g", what)

    def node(self, node: str, what: str) -> str:
        """A node's key: ``alive``, ``health``, ``conns``, ``metas``, ``inbox``, ``inbox-sz`` or ``inbox-ix``."""
        return self._key(f"n:{encoded(node)}", what)

    def client(self, client: object, what: str) -> str:
        """A client's key: ``conns``, ``chans``, ``inbox``, ``inbox-meta`` or ``inbox-ids``."""
        return self.client_keys(client, what)[0]

    def client_keys(self, client: object, *what: str) -> tuple[str, ...]:
        """Several keys of one client (its id encoded once)."""
        segment = encoded(client)
        base = f"{self.prefix}:{{{partition_tag('c', _partition_of(segment))}}}:{segment}:"
        return tuple([base + one for one in what])

    def clients(self, part: int, what: str) -> str:
        """A key of client partition ``part``: ``online`` or ``events``."""
        return self._key(partition_tag("c", part), what)

    def lease(self, part: int, group: str) -> str:
        """Client partition ``part``'s events lease of consumer group ``group``: the worker reading them now."""
        return self._key(partition_tag("c", part), f"events:lease:{encoded(group)}")

    def workers(self, group: str, what: str = "alive") -> str:
        """Of events consumer group ``group``: its workers (``alive``), or the list that wakes those waiting for a
        partition (``wake``)."""
        return self._key("g", f"workers:{encoded(group)}:{what}")

    def clients_of(self, client: object, what: str) -> str:
        """The key ``what`` of the partition of ``client``."""
        return self.clients(partition(client), what)

    def inbox(self, node: str) -> tuple[str, str, str]:
        """A node's inbox keys, in the order the scripts read them: the stream, its size, its index."""
        return self.node(node, "inbox"), self.node(node, "inbox-sz"), self.node(node, "inbox-ix")

    def chan(self, chan: str, what: str) -> str:
        """A chan's key: ``members``, ``nodes``, ``stream``, ``stream-meta`` or ``stream-ids``."""
        segment = encoded(chan)
        return f"{self.prefix}:{{{partition_tag('h', _partition_of(segment))}}}:{segment}:{what}"

    def chans(self, part: int) -> str:
        """Chan partition ``part``'s list of chans."""
        return self._key(partition_tag("h", part), "chans")

    def chans_of(self, chan: str) -> str:
        """The list of chans that holds ``chan``."""
        return self.chans(partition(chan))

    def everything(self) -> str:
        """A ``SCAN MATCH`` pattern for every key under the prefix."""
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + ":*"
