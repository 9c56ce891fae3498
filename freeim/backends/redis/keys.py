"""The Redis key layout, written once: every key freeim reads or writes is named here.

Keys are ``<prefix>:{<owner>}:<what>``. The braces hold the owner's hash tag, so every key
of one client, one chan or one node lands in one Redis Cluster slot, and ``{g}`` holds the
few global keys. Ids inside a tag are percent-encoded (:func:`urllib.parse.quote`, nothing
kept), so they contain no ``:``, ``{``, ``}`` or ``%``: a client id, chan name or node name,
whatever it holds, can never spell another key's name (``freeim.E011`` keeps braces out of
the prefix). Every script receives the keys it touches in ``KEYS``.

=============================  =======  ===============================================================
key                            type     holds
=============================  =======  ===============================================================
``p:tok:<token>``              string   a connect token's JSON record (``SET EX``; ``GETDEL``)
``p:{g}:nodes``                zset     node -> last heartbeat (Redis server time, ms)
``p:{g}:online``               set      the online client ids
``p:{g}:chans``                zset     chan -> member count
``p:{g}:events``               stream   online/offline events for ``freeim_events``
``p:{g}:reaper``               string   the node reaping dead peers now (``NX PX``)
``p:{g}:draining``             set      the nodes that drain: connect sends no new terminal there
``p:{n:<node>}:alive``         string   the node process's boot id (``PX`` heartbeat TTL)
``p:{n:<node>}:health``        string   the node's health report, JSON, written with each beat (``PX`` heartbeat TTL)
``p:{n:<node>}:conns``         hash     connection id -> client id, the node's sockets
``p:{n:<node>}:metas``         hash     connection id -> its meta (when not empty), for the reaper's offline events
``p:{n:<node>}:inbox``         stream   payload batches for the node (bounded in age and bytes)
``p:{n:<node>}:inbox-sz``      string   bytes held by the inbox's entries
``p:{n:<node>}:inbox-ix``      list     ``"<entry id> <bytes>"`` per inbox entry, oldest first
``p:{c:<client>}:conns``       hash     connection id -> node, the client's sockets
``p:{c:<client>}:chans``       set      the client's chans
``p:{c:<client>}:inbox``       stream   the client's private messages (offset, size, message id, frame)
``p:{c:<client>}:inbox-meta``  hash     epoch ``e``, newest offset ``t``, bytes held ``b``, oldest entry's ms ``f``
``p:{c:<client>}:inbox-ids``   hash     message id -> "<offset> <receipt to>" of each message kept
``p:{h:<chan>}:members``       set      the chan's members
``p:{h:<chan>}:nodes``         hash     node -> members of the chan connected there
``p:{h:<chan>}:stream``        stream   the chan's messages, an inbox its members share (as a client's ``inbox``)
``p:{h:<chan>}:stream-meta``   hash     as a client's ``inbox-meta``
``p:{h:<chan>}:stream-ids``    hash     as a client's ``inbox-ids``
=============================  =======  ===============================================================

Presence is kept per connection id, never as a counter, so a script that Redis ran but whose
reply was lost, and that redis-py's retry then sends again, changes nothing the second time.
"""

from __future__ import annotations

import re
from urllib.parse import quote

#: What percent-encoding leaves as it is: text made only of these is its own encoding.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


def encoded(value: object) -> str:
    """``value`` as a key segment: percent-encoded, so it holds no ``:``, braces or ``%`` of its own."""
    text = str(value)
    return text if _UNRESERVED(text) else quote(text, safe="")  # the common case without quote's cost


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def _key(self, tag: str, what: str) -> str:
        return f"{self.prefix}:{{{tag}}}:{what}"

    def token(self, token: str) -> str:
        return f"{self.prefix}:tok:{encoded(token)}"

    def shared(self, what: str) -> str:
        """A global key: ``nodes``, ``online``, ``chans``, ``events``, ``reaper`` or ``draining``."""
        return self._key("g", what)

    def node(self, node: str, what: str) -> str:
        """A node's key: ``alive``, ``health``, ``conns``, ``metas``, ``inbox``, ``inbox-sz`` or ``inbox-ix``."""
        return self._key(f"n:{encoded(node)}", what)

    def client(self, client: object, what: str) -> str:
        """A client's key: ``conns``, ``chans``, ``inbox``, ``inbox-meta`` or ``inbox-ids``."""
        return self._key(f"c:{encoded(client)}", what)

    def client_keys(self, client: object, *what: str) -> tuple[str, ...]:
        """Several keys of one client (its id encoded once)."""
        base = f"{self.prefix}:{{c:{encoded(client)}}}:"
        return tuple([base + one for one in what])

    def inbox(self, node: str) -> tuple[str, str, str]:
        """A node's inbox keys, in the order the scripts read them: the stream, its size, its index."""
        return self.node(node, "inbox"), self.node(node, "inbox-sz"), self.node(node, "inbox-ix")

    def chan(self, chan: str, what: str) -> str:
        """A chan's key: ``members`` or ``nodes``."""
        return self._key(f"h:{encoded(chan)}", what)

    def everything(self) -> str:
        """A ``SCAN MATCH`` pattern for every key under the prefix."""
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix) + ":*"
