"""Which node owns a client id. Pure functions: no I/O, no settings.

``modulo`` is FreeIM's rule (``id % len(nodes)``; strings hash first): changing
the node list remaps most clients. ``rendezvous`` (highest random weight) moves
only the clients of the node that came or went, about 1/N of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..exceptions import NoServerAvailable
from ..ids import ClientId


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def modulo(client_id: ClientId, nodes: Sequence[str]) -> str:
    """FreeIM's routing: ``nodes[client_id % len(nodes)]``."""
    if not nodes:
        raise NoServerAvailable()
    number = client_id if isinstance(client_id, int) else _hash(client_id)
    return nodes[number % len(nodes)]


def rendezvous(client_id: ClientId, nodes: Sequence[str]) -> str:
    """Highest-random-weight hashing: the node with the largest hash of (node, client)."""
    if not nodes:
        raise NoServerAvailable()
    key = f"\x00{client_id!r}"
    return max(nodes, key=lambda node: _hash(node + key))


STRATEGIES = {"modulo": modulo, "rendezvous": rendezvous}


def pick(client_id: ClientId, nodes: Sequence[str], strategy: str = "rendezvous") -> str:
    """The node of ``nodes`` that owns ``client_id`` under ``strategy``."""
    return STRATEGIES[strategy](client_id, nodes)
