"""Every helper operation, written once as a generator of backend calls.

Each generator yields ``(operation name, args)`` and receives the result;
:func:`run` drives it blocking (the sync twins in :mod:`freeim.im`), :func:`arun`
awaiting (the async twins, and the node). The routing decisions in between are pure and live here, so the sync
and async APIs can never drift apart.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Generator, Iterable
from typing import Any, Literal, TypeVar

from . import ids, payloads, protocol, router
from .backends import Backend, get_backend
from .conf import conf, server_base
from .effects import adrive, drive
from .exceptions import ClientOffline, FanoutTooLarge, InvalidMessage, NoServerAvailable
from .ids import ClientId
from .payloads import Payload

T = TypeVar("T")
Op = Generator[tuple[str, tuple[Any, ...]], Any, T]
MAX_META_LENGTH = 1024


def run(op: Op[T], backend: Backend | None = None) -> T:
    """Drive an operation with blocking backend calls."""
    chosen = backend or get_backend()
    return drive(op, lambda call: chosen.call(call[0], *call[1]))


async def arun(op: Op[T], backend: Backend | None = None) -> T:
    """Drive an operation with awaited backend calls."""
    chosen = backend or get_backend()
    return await adrive(op, lambda call: chosen.acall(call[0], *call[1]))


def connect_ticket(client_id: object, meta: str = "", base: str | None = None) -> Op[tuple[str, str]]:
    """Issue a one-time token for ``client_id`` on its node; return ``(url, node)``."""
    client = ids.client_id(client_id)
    if not isinstance(meta, str) or len(meta) > MAX_META_LENGTH:
        raise InvalidMessage(f"meta must be a string of at most {MAX_META_LENGTH} characters.")
    servers = conf.SERVERS
    if servers:
        alive = set((yield ("alive_nodes", ())))
        node = router.pick(client, [s for s in servers if s in alive] or servers, conf.ROUTING)
        base = server_base(node)
    elif base:
        node = conf.SERVER
    else:
        raise NoServerAvailable("FREEIM['SERVERS'] is empty: configure it, or pass the base URL to connect to.")
    token = secrets.token_urlsafe(24)
    yield ("issue_token", (token, {"client_id": client, "meta": meta, "server": node}, conf.TOKEN_TTL))
    return f"{base.rstrip('/')}{conf.PATH}?token={token}", node


def prev_connect_server(client_id: object, meta: str = "", base: str | None = None) -> Op[str]:
    """FreeIM's PrevConnectServer: the ``ws(s)://<node><PATH>?token=...`` URL for ``client_id``."""
    url, _node = yield from connect_ticket(client_id, meta, base)
    return url


def _checked(frame: str) -> int:
    """The encoded size of ``frame``, which must be at most ``MAX_MESSAGE_BYTES``."""
    size = len(frame.encode())
    if size > conf.MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"The message is larger than MAX_MESSAGE_BYTES ({conf.MAX_MESSAGE_BYTES}).")
    return size


def _publish(batches: dict[str, list[Payload]]) -> Op[None]:
    if batches:
        yield ("publish", (dict(batches),))


def send_message(sender: object, receivers: object, message: Any, receipt: bool = False) -> Op[str]:
    """Send ``message`` from ``sender`` to every connection of each of ``receivers``; return its id.

    A receiver that is the sender gets it only on its other devices (when it has
    more than one connection). With ``receipt`` the sender gets one receipt per
    receiver, naming the message by its id: ``delivered`` from the receiver's node, or ``offline``.
    """
    [message_id] = yield from send_messages([(sender, receivers, message)], receipt)
    return message_id


def send_messages(messages: Iterable[tuple[object, object, Any]], receipt: bool = False) -> Op[list[str]]:
    """``send_message`` for many ``(sender, receivers, message)`` at once: one presence lookup
    and one write per node for the whole batch; return their ids. All are checked before any is
    sent, and together they may put at most ``MAX_FANOUT_BYTES`` (size x receivers) in flight."""
    prepared = []
    fanout = 0
    for sender, receivers, message in messages:
        source, targets, message_id = ids.client_id(sender), ids.client_ids(receivers), secrets.token_hex(8)
        frame = protocol.message_frame(message_id, source, message)
        fanout += _checked(frame) * len(targets)
        prepared.append((source, targets, message_id, frame))
    if fanout > conf.MAX_FANOUT_BYTES:
        raise FanoutTooLarge(f"The message times its receivers is {fanout} bytes, more than MAX_FANOUT_BYTES "
                             f"({conf.MAX_FANOUT_BYTES}).")
    everyone = [client for source, targets, _, _ in prepared for client in (*targets, source)]
    located = yield ("locate", (list(dict.fromkeys(everyone)),))
    batches: dict[str, list[Payload]] = defaultdict(list)
    for source, targets, message_id, frame in prepared:
        _route_message(batches, located, source, targets, message_id, frame, receipt)
    yield from _publish(batches)
    return [message_id for _, _, message_id, _ in prepared]


def _route_message(batches: dict[str, list[Payload]], located: dict[ClientId, dict[str, int]],
                   source: ClientId, targets: list[ClientId], message_id: str, frame: str, receipt: bool) -> None:
    """Add one message's payloads to the per-node ``batches``."""
    if source in targets and sum(located.get(source, {}).values()) <= 1:
        targets = [t for t in targets if t != source]
    by_node: dict[str, list[ClientId]] = defaultdict(list)
    for target in targets:
        for node in located.get(target, ()):
            by_node[node].append(target)
    wants: payloads.Receipt | None = {"sender": source, "id": message_id} if receipt else None
    for node, to in by_node.items():
        batches[node].append(payloads.send(to, frame, wants))
    if receipt:
        receipts: list[Payload] = [
            payloads.send([source], protocol.receipt_frame(message_id, t, protocol.RECEIPT_OFFLINE))
            for t in targets if t not in located]
        for node in located.get(source, {}) if receipts else ():
            batches[node].extend(receipts)


def send_frames(client_id: ClientId, frames: list[str]) -> Op[None]:
    """Deliver ready-made frames to every connection of one client (receipts use this)."""
    located = yield ("locate", ([client_id],))
    batch: list[Payload] = [payloads.send([client_id], f) for f in frames]
    yield from _publish({node: batch for node in located.get(client_id, ())})


def get_client_list_by_online() -> Op[list[ClientId]]:
    """Every online client id."""
    return (yield ("online_clients", ()))


def has_online(client_id: object) -> Op[bool | dict[ClientId, bool]]:
    """Is one client online (bool), or which of a list are (``{id: bool}``)."""
    wanted = ids.client_ids(client_id)
    located = yield ("locate", (wanted,))
    if isinstance(client_id, (int, str)):
        return wanted[0] in located
    return {c: c in located for c in wanted}


def get_client_nodes(client_ids: object) -> Op[dict[ClientId, dict[str, int]]]:
    """Where the online ones of ``client_ids`` are connected: ``{client: {node: connections}}``."""
    return (yield ("locate", (ids.client_ids(client_ids),)))


def force_offline(client_id: object) -> Op[None]:
    """Close every connection of ``client_id`` with close code 4000."""
    client = ids.client_id(client_id)
    located = yield ("locate", ([client],))
    yield from _publish({node: [payloads.offline(client)] for node in located.get(client, ())})


def _chan_change(op: Literal["join", "leave"], client_id: object, chans: tuple[object, ...]) -> Op[None]:
    client = ids.client_id(client_id)
    names = list(dict.fromkeys(ids.chan(c) for c in chans))
    if op == "join":
        if not (yield ("join", (client, names))):
            raise ClientOffline(f"Client {client!r} is not online; chans are joined by online clients.")
    else:
        yield ("leave", (client, names))
    located = yield ("locate", ([client],))
    change = payloads.chan_change(op, client, names)
    yield from _publish({node: [change] for node in located.get(client, ())})


def join_chan(client_id: object, *chans: object) -> Op[None]:
    """Add an online client to chans (left again on its last disconnect)."""
    yield from _chan_change("join", client_id, chans)


def leave_chan(client_id: object, *chans: object) -> Op[None]:
    """Remove a client from chans."""
    yield from _chan_change("leave", client_id, chans)


def get_chan_client_list(chan: object) -> Op[list[ClientId]]:
    """The members of ``chan``."""
    return (yield ("chan_members", (ids.chan(chan),)))


def clear_chan_client(chan: object) -> Op[list[ClientId]]:
    """Empty ``chan``; return who its members were."""
    name = ids.chan(chan)
    members = yield ("clear_chan", (name,))
    nodes = yield ("alive_nodes", ())
    yield from _publish({node: [payloads.clear(name)] for node in nodes})
    return members


def get_chan_list() -> Op[list[tuple[str, int]]]:
    """Every chan with its online member count."""
    return (yield ("chan_list", ()))


def get_chan_list_by_client_id(client_id: object) -> Op[list[str]]:
    """The chans a client is in."""
    return (yield ("client_chans", (ids.client_id(client_id),)))


def get_chan_online(chan: object) -> Op[int]:
    """How many online members ``chan`` has."""
    return (yield ("chan_online", (ids.chan(chan),)))


def send_chan_message(sender: object, chan: object, message: Any) -> Op[None]:
    """Send ``message`` to every member of ``chan``, only through the nodes that host one."""
    name = ids.chan(chan)
    frame = protocol.chan_frame(name, ids.client_id(sender), message)
    _checked(frame)
    nodes = yield ("chan_nodes", (name,))
    yield from _publish({node: [payloads.chan(name, frame)] for node in nodes})


def send_broadcast_message(message: Any) -> Op[None]:
    """Send ``message`` to every connection on every node."""
    frame = protocol.broadcast_frame(message)
    _checked(frame)
    nodes = yield ("alive_nodes", ())
    yield from _publish({node: [payloads.broadcast(frame)] for node in nodes})
