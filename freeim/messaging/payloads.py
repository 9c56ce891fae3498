"""What the helper sends a node, defined once: :mod:`freeim.messaging.operations` builds these, the node
(:mod:`freeim.node.delivery`) applies them. The transport carries them as JSON objects.

=========  =====================================================================
``op``     the node
=========  =====================================================================
send       writes ``frame`` (with each client's ``pos``) to every connection of each
           client in ``to``; with ``receipt``, reports delivered/offline per client to
           the sender
chan       writes ``frame`` (with its ``pos`` in the chan's stream) to the local
           members of ``chan``
broadcast  writes ``frame`` to every connection
join/leave updates the local chan index for ``client`` and ``chans``; a leave tells
           the client's sockets which chans it left (``left`` frames)
clear      drops ``chan`` from the local index, telling its local members
offline    closes every connection of ``client`` (close code 4000)
=========  =====================================================================
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from ..ids import ClientId


class Receipt(TypedDict):
    """Who wants a receipt for which message."""

    sender: ClientId
    id: str


class Send(TypedDict):
    op: Literal["send"]
    to: list[ClientId]
    frame: str
    receipt: NotRequired[Receipt]  # left out when none is wanted: receipts to many clients are many
    #: Each receiver's position of the message in its inbox (a private message), in the order of ``to``;
    #: left out for frames no inbox keeps (receipts).
    pos: NotRequired[list[str]]


class Chan(TypedDict):
    op: Literal["chan"]
    chan: str
    frame: str
    #: The message's position in the chan's stream.
    pos: NotRequired[str]


class Broadcast(TypedDict):
    op: Literal["broadcast"]
    frame: str


class ChanChange(TypedDict):
    op: Literal["join", "leave"]
    client: ClientId
    chans: list[str]


class Clear(TypedDict):
    op: Literal["clear"]
    chan: str


class Offline(TypedDict):
    op: Literal["offline"]
    client: ClientId


Payload = Send | Chan | Broadcast | ChanChange | Clear | Offline


def send(to: list[ClientId], frame: str, receipt: Receipt | None = None, positions: list[str] | None = None) -> Send:
    payload: Send = {"op": "send", "to": to, "frame": frame}
    if receipt is not None:
        payload["receipt"] = receipt
    if positions is not None:
        payload["pos"] = positions
    return payload


def chan(name: str, frame: str, at: str | None = None) -> Chan:
    payload: Chan = {"op": "chan", "chan": name, "frame": frame}
    if at is not None:
        payload["pos"] = at
    return payload


def broadcast(frame: str) -> Broadcast:
    return {"op": "broadcast", "frame": frame}


def chan_change(op: Literal["join", "leave"], client: ClientId, chans: list[str]) -> ChanChange:
    return {"op": op, "client": client, "chans": chans}


def clear(name: str) -> Clear:
    return {"op": "clear", "chan": name}


def offline(client: ClientId) -> Offline:
    return {"op": "offline", "client": client}
