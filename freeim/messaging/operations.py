"""Every helper operation, written once as a coroutine over a :class:`~freeim.backends.contract.Backend`.

This is where a message is routed: the operation checks it, finds where its receivers are
connected (the store), and hands each of their nodes one payload batch (the transport).
:mod:`freeim.im` runs each operation awaited on the backend (the async twins, and the node),
or on the backend's blocking form with :func:`~freeim.backends.contract.run_blocking` (the sync
twins): one definition, so the sync and async APIs can never drift apart.
"""

from __future__ import annotations

import secrets
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, NamedTuple, TypeVar

from .. import ids, protocol
from ..backends import Backend
from ..backends.contract import Letter, Page, TokenRecord
from ..conf import IncomingRequest, conf, request_base, server_base
from ..exceptions import BadCursor, ClientOffline, FanoutTooLarge, InvalidMessage, NoConnectBase
from ..ids import ClientId
from . import payloads, router
from .payloads import Payload

MAX_META_LENGTH = 1024
#: A node whose last heartbeat is older than this share of ``HEARTBEAT_TTL`` gets no new terminals: it beats
#: every fifth of the TTL, so it missed two beats and is likely dead, though not yet reaped.
LATE_AFTER = 0.5
#: Message ids one mark_read call takes.
MAX_READ_AT_ONCE = 1000
#: Items of a page of the online clients or the chans, by default and at most.
PAGE = 1000
MAX_PAGE = 10_000
T = TypeVar("T")


async def connect_ticket(backend: Backend, client_id: object, meta: str = "", base: str | IncomingRequest | None = None,
                         since: str | None = None, avoid: str | None = None,
                         chans_since: dict[str, str] | None = None, join: list[str] | None = None) -> tuple[str, str]:
    """Issue a one-time token for ``client_id`` on its node; return ``(url, node)``.

    ``since``: the last position the terminal holds (``"*"``: none yet); the socket then first gets
    what the client's inbox kept after it, in order, then live messages. None: live messages only.
    ``chans_since``: the same per chan, for the chans the client is in when it connects.
    ``join``: chans the client joins as the socket opens (a terminal's own chans, which its client
    left with its last socket), so they are caught up on from ``chans_since`` too. Whether the
    caller may join them is the caller's to check, as for :func:`join_chan`.

    ``base``: where terminals reach this process's node when ``SERVERS`` is empty (the embedded default): a
    ``ws(s)://`` base URL, or the request being answered (its scheme and host).

    The node is the client's by ``ROUTING`` among the nodes whose heartbeat is not late (a node
    that died is left out within half a heartbeat TTL, long before it is reaped) and that do not
    drain (a node told to stop), and never ``avoid`` (the node the terminal just lost, or could
    not reach) while there is another.
    """
    client = ids.client_id(client_id)
    if not isinstance(meta, str) or len(meta) > MAX_META_LENGTH:
        raise InvalidMessage(f"meta must be a string of at most {MAX_META_LENGTH} characters.")
    if since is not None and not _resumable(since):
        raise InvalidMessage('since must be a position ("<epoch>.<offset>", as frames carry it) or "*".')
    if chans_since is not None and (not isinstance(chans_since, dict) or len(chans_since) > conf.MAX_CHANS_PER_CLIENT
                                    or not all(isinstance(c, str) and _resumable(at) for c, at in chans_since.items())):
        raise InvalidMessage("chans_since must map at most MAX_CHANS_PER_CLIENT chans to positions or \"*\".")
    if join is not None and (not isinstance(join, list | tuple) or len(join) > conf.MAX_CHANS_PER_CLIENT):
        raise InvalidMessage("join must list at most MAX_CHANS_PER_CLIENT chans.")
    servers = conf.SERVERS
    token = secrets.token_urlsafe(24)
    record: TokenRecord = {"client_id": client, "meta": meta, "server": conf.SERVER}
    if since is not None:
        record["since"] = since
    if chans_since:
        record["chans_since"] = {ids.chan(c): at for c, at in chans_since.items()}
    if join:
        record["join"] = list(dict.fromkeys(ids.chan(c) for c in join))
    if servers:
        node = await _issue_on_a_live_node(backend, token, record, servers, avoid)
        base = server_base(node)
    elif base:
        node = record["server"]
        base = base if isinstance(base, str) else request_base(base)
        await backend.store.issue_token(token, record, conf.TOKEN_TTL)
    else:
        raise NoConnectBase()
    return f"{base.rstrip('/')}{conf.PATH}?token={token}", node


#: The nodes that each backend's last connect saw beating and taking terminals (:func:`_issue_on_a_live_node`).
_seen_nodes: weakref.WeakKeyDictionary[Backend, list[str]] = weakref.WeakKeyDictionary()


async def _issue_on_a_live_node(backend: Backend, token: str, record: TokenRecord, servers: list[str],
                                avoid: str | None) -> str:
    """Issue ``token`` on its client's node among the live ones, and return that node.

    The node is chosen among the nodes the process's last connect saw, and the token is issued while the nodes are
    read again, in one round trip. Only where they changed since (a node died, drains or came) and the choice with
    them is the token issued again, for the right node: a second round trip, which the first connect of a process
    makes too, reading the nodes first."""
    within = conf.HEARTBEAT_TTL * LATE_AFTER
    seen = _seen_nodes.get(backend)
    if seen is None:
        seen = await backend.nodes.alive_nodes(within=within, accepting=True)
    record["server"] = _choose(record["client_id"], servers, seen, avoid)
    fresh = _seen_nodes[backend] = await backend.store.issue_token_seeing_nodes(token, record, conf.TOKEN_TTL, within)
    right = _choose(record["client_id"], servers, fresh, avoid)
    if right != record["server"]:
        record["server"] = right
        await backend.store.issue_token(token, record, conf.TOKEN_TTL)  # the same token, nobody holds it yet
    return right


def _choose(client: ClientId, servers: list[str], alive: list[str], avoid: str | None) -> str:
    """The node of ``client`` by ``ROUTING`` among the ``servers`` that are ``alive`` (all of them if none is), never
    ``avoid`` while there is another."""
    candidates = [server for server in servers if server in alive] or servers
    return router.pick(client, [server for server in candidates if server != avoid] or candidates, conf.ROUTING)


async def prev_connect_server(backend: Backend, client_id: object, meta: str = "",
                              base: str | IncomingRequest | None = None,
                              since: str | None = None, avoid: str | None = None,
                              chans_since: dict[str, str] | None = None, join: list[str] | None = None) -> str:
    """FreeIM's PrevConnectServer: the ``ws(s)://<node><PATH>?token=...`` URL for ``client_id``."""
    url, _node = await connect_ticket(backend, client_id, meta, base, since, avoid, chans_since, join)
    return url


def _resumable(at: object) -> bool:
    return at == protocol.FROM_THE_START or protocol.parse_position(at) is not None


def _checked(frame: str) -> int:
    """The encoded size of ``frame``, which must be at most ``MAX_MESSAGE_BYTES``."""
    size = len(frame.encode())
    if size > conf.MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"The message is larger than MAX_MESSAGE_BYTES ({conf.MAX_MESSAGE_BYTES}).")
    return size


async def _publish(backend: Backend, batches: dict[str, list[Payload]]) -> None:
    if batches:
        await backend.transport.publish(dict(batches))


class Waiting(NamedTuple):
    """A message stored for a receiver that had no socket when it was sent (``message_stored``'s kwargs)."""

    client_id: ClientId
    from_id: ClientId
    message_id: str
    message: Any
    position: str


class Sent(NamedTuple):
    """What :func:`deliver_messages` did: each message as sent, and which of them wait for absent receivers."""

    messages: list[SentMessage]
    waiting: list[Waiting]


class SentMessage(NamedTuple):
    """One private message as sent (what a history keeps)."""

    message_id: str
    sender: ClientId
    receivers: list[ClientId]
    message: Any


#: What :func:`prepare_messages` takes: ``(sender, receivers, message)``, or with the sender's idempotency key
#: last.
Outgoing = tuple[object, object, Any] | tuple[object, object, Any, str | None]


class Prepared(NamedTuple):
    """Messages checked, named and framed: ready to be kept (a history) and sent (:func:`deliver_messages`);
    several calls' together too (:mod:`.coalescing`)."""

    messages: list[SentMessage]
    frames: list[str]
    #: Whether each message's sender asked for receipts.
    receipts: list[bool]
    #: What they put in flight: size x receivers, summed.
    fanout: int


def prepare_messages(messages: Iterable[Outgoing], receipt: bool = False) -> Prepared:
    """Check each ``(sender, receivers, message[, key])`` and give it its id and frame; together they may put
    at most ``MAX_FANOUT_BYTES`` (size x receivers) in flight. Nothing is sent, so an error leaves no trace.

    A message sent again with the same ``key`` by the same sender, to the same receivers (in any order)
    and as asking for a receipt or not, is the same message: same id, kept and shown once
    (:func:`freeim.ids.message_id`).
    """
    sent, frames = [], []
    fanout = 0
    for sender, receivers, message, *key in messages:
        source, targets = ids.client_id(sender), ids.client_ids(receivers)
        message_id = _message_id(source, key[0] if key else None, message, targets, receipt)
        frame = protocol.message_frame(message_id, source, message)
        fanout += _checked(frame) * len(targets)
        sent.append(SentMessage(message_id, source, targets, message))
        frames.append(frame)
    if fanout > conf.MAX_FANOUT_BYTES:
        raise FanoutTooLarge(f"The message times its receivers is {fanout} bytes, more than MAX_FANOUT_BYTES "
                             f"({conf.MAX_FANOUT_BYTES}).")
    return Prepared(sent, frames, [receipt] * len(sent), fanout)


async def deliver_messages(backend: Backend, prepared: Prepared) -> Sent:
    """Send prepared messages: one round trip stores them in their receivers' inboxes (and finds where those
    are connected), one hands each node its batch (:func:`store_prepared`, then :func:`hand_over`).

    A receiver that is the sender gets it only on its other devices (when it has more than one
    connection). A sender that asked for receipts gets one per receiver, naming the message by its
    id: ``delivered`` from the receiver's node, or ``offline`` (it waits in the receiver's inbox).
    """
    return await hand_over(backend, await store_prepared(backend, prepared))


class Stored(NamedTuple):
    """Prepared messages in their receivers' inboxes: each receiver's position and nodes, in the order of the
    messages' receivers, and where their senders are connected."""

    prepared: Prepared
    placed: list[tuple[str, dict[str, int]]]
    senders: dict[ClientId, dict[str, int]]


async def store_prepared(backend: Backend, prepared: Prepared) -> Stored:
    """Put prepared messages in their receivers' inboxes: the first half of :func:`deliver_messages`."""
    letters = [Letter(target, sent.message_id, frame, sent.sender if receipt else None)
               for sent, frame, receipt in zip(prepared.messages, prepared.frames, prepared.receipts, strict=True)
               for target in sent.receivers]
    placed, senders = await backend.store.store_messages(letters, list(dict.fromkeys(s.sender
                                                                                     for s in prepared.messages)))
    return Stored(prepared, placed, senders)


async def hand_over(backend: Backend, stored: Stored) -> Sent:
    """Hand stored messages to the nodes of their receivers, and receipts to their senders: the second half of
    :func:`deliver_messages`."""
    prepared, senders = stored.prepared, stored.senders
    batches: dict[str, list[Payload]] = defaultdict(list)
    waiting, offline = [], []
    taken = 0
    for sent, frame, receipt in zip(prepared.messages, prepared.frames, prepared.receipts, strict=True):
        placed = dict(zip(sent.receivers, stored.placed[taken:taken + len(sent.receivers)], strict=True))
        taken += len(sent.receivers)
        absent = [Waiting(target, sent.sender, sent.message_id, sent.message, at)
                  for target, (at, nodes) in placed.items() if not nodes]
        waiting += absent
        if receipt:
            offline += [ReceiptDue(w.from_id, w.message_id, w.client_id, protocol.RECEIPT_OFFLINE) for w in absent]
        _route_message(batches, senders, sent.sender, placed, sent.message_id, frame, receipt)
    await _publish(backend, batches)
    await send_receipts(backend, offline)
    return Sent(prepared.messages, waiting)


def _message_id(sender: ClientId, key: str | None, message: Any, *where: object) -> str:
    """A message's id (:func:`freeim.ids.message_id`): with a key, bound to the message (as JSON) and ``where``
    it goes (receivers in any order, and whether receipts are asked; or a chan)."""
    if key is None:
        return ids.message_id(sender)
    to = [sorted(map(str, w)) if isinstance(w, list) else w for w in where]
    return ids.message_id(sender, key, protocol.encode({"to": to, "data": message}))


def _route_message(batches: dict[str, list[Payload]], senders: dict[ClientId, dict[str, int]], source: ClientId,
                   placed: dict[ClientId, tuple[str, dict[str, int]]], message_id: str, frame: str,
                   receipt: bool) -> None:
    """Add one message's payloads to the per-node ``batches``; ``placed``: each receiver's position of it,
    and where the receiver is connected."""
    if source in placed and sum(senders.get(source, {}).values()) <= 1:
        del placed[source]  # kept in its inbox for its devices to come, but sent to none now
    by_node: dict[str, tuple[list[ClientId], list[str]]] = defaultdict(lambda: ([], []))
    for target, (at, nodes) in placed.items():
        for node in nodes:
            by_node[node][0].append(target)
            by_node[node][1].append(at)
    wants: payloads.Receipt | None = {"sender": source, "id": message_id} if receipt else None
    for node, (to, positions) in by_node.items():
        batches[node].append(payloads.send(to, frame, wants, positions))


async def mark_read(backend: Backend, reader: object, message_ids: object) -> int:
    """``reader`` read these messages of its inbox: the senders that asked for receipts get ``read`` ones;
    return how many were sent. Messages the inbox no longer keeps, or sent without ``receipt``, get none."""
    client = ids.client_id(reader)
    if not isinstance(message_ids, list | tuple) or not all(isinstance(i, str) for i in message_ids) \
            or len(message_ids) > MAX_READ_AT_ONCE:
        raise InvalidMessage(f"message ids must be a list of at most {MAX_READ_AT_ONCE} strings.")
    wanted = await backend.store.receipts_wanted(client, list(dict.fromkeys(message_ids)))
    await send_receipts(backend, [ReceiptDue(sender, message_id, client, protocol.RECEIPT_READ)
                                  for message_id, sender in wanted])
    return len(wanted)


class ReceiptDue(NamedTuple):
    """A receipt owed to ``sender``: ``receiver`` got ``message_id`` (``status``), or it waits for it."""

    sender: ClientId
    message_id: str
    receiver: ClientId
    status: str


async def send_receipts(backend: Backend, receipts: list[ReceiptDue]) -> None:
    """Put each receipt in its sender's inbox, then send it to the sender's connections: one round trip stores
    them all (and finds where the senders are), one hands each node its batch.

    In the inbox, a receipt reaches a sender that is away (its node died, its page reloads) when it comes
    back, as any message, at its position; and the same receipt owed twice (a catch-up and a live write
    of one message) is kept and shown once.
    """
    if not receipts:
        return
    letters = [Letter(due.sender, f"{due.message_id}:{due.status}:{due.receiver}",
                      protocol.receipt_frame(due.message_id, due.receiver, due.status)) for due in receipts]
    stored, _senders = await backend.store.store_messages(letters, [])
    batches: dict[str, list[Payload]] = defaultdict(list)
    for letter, (at, nodes) in zip(letters, stored, strict=True):
        for node in nodes:
            batches[node].append(payloads.send([letter.client], letter.frame, None, [at]))
    await _publish(backend, batches)


async def get_client_list_by_online(backend: Backend) -> list[ClientId]:
    """Every online client id."""
    return await backend.store.online_clients()


async def get_online_count(backend: Backend) -> int:
    """How many clients are online."""
    return await backend.store.online_count()


async def get_client_page_by_online(backend: Backend, cursor: str = "", count: int = PAGE) -> Page[ClientId]:
    """About ``count`` online client ids from ``cursor`` on (``""``: the first page), and the cursor of the next page
    (``""`` after the last): the online list of a deployment too large to read at once."""
    return await _page(backend.store.online_page, cursor, count)


async def is_online(backend: Backend, client_id: object) -> bool:
    """Whether one client is online."""
    client = ids.client_id(client_id)
    return client in await backend.store.locate([client])


async def which_online(backend: Backend, client_ids: object) -> dict[ClientId, bool]:
    """Which of several clients are online: ``{id: bool}``, keyed by the ids as given (``"2"`` stays a string,
    though it is the same client as ``2``)."""
    if isinstance(client_ids, int | str) or not isinstance(client_ids, Iterable):
        return {ids.client_id(client_ids): await is_online(backend, client_ids)}
    given = list(client_ids)
    canonical = [ids.client_id(client) for client in given]  # valid ids are ints and strings: hashable
    located = await backend.store.locate(list(dict.fromkeys(canonical)))
    return {client: same in located for client, same in zip(given, canonical, strict=True)}


async def get_client_nodes(backend: Backend, client_ids: object) -> dict[ClientId, dict[str, int]]:
    """Where the online ones of ``client_ids`` are connected: ``{client: {node: connections}}``."""
    return await backend.store.locate(ids.client_ids(client_ids))


async def force_offline(backend: Backend, client_id: object) -> None:
    """Close every connection of ``client_id`` with close code 4000."""
    client = ids.client_id(client_id)
    located = await backend.store.locate([client])
    await _publish(backend, {node: [payloads.offline(client)] for node in located.get(client, ())})


async def _chan_change(backend: Backend, op: Literal["join", "leave"], client_id: object,
                       chans: tuple[object, ...]) -> None:
    client = ids.client_id(client_id)
    names = list(dict.fromkeys(ids.chan(c) for c in chans))
    if op == "join":
        if not await backend.store.join(client, names):
            raise ClientOffline(f"Client {client!r} is not online; chans are joined by online clients.")
    else:
        await backend.store.leave(client, names)
    located = await backend.store.locate([client])
    change = payloads.chan_change(op, client, names)
    await _publish(backend, {node: [change] for node in located.get(client, ())})


async def join_chan(backend: Backend, client_id: object, *chans: object) -> None:
    """Add an online client to chans (left again on its last disconnect)."""
    await _chan_change(backend, "join", client_id, chans)


async def leave_chan(backend: Backend, client_id: object, *chans: object) -> None:
    """Remove a client from chans."""
    await _chan_change(backend, "leave", client_id, chans)


async def get_chan_client_list(backend: Backend, chan: object) -> list[ClientId]:
    """The members of ``chan``."""
    return await backend.store.chan_members(ids.chan(chan))


async def clear_chan_client(backend: Backend, chan: object) -> list[ClientId]:
    """Empty ``chan``; return who its members were."""
    name = ids.chan(chan)
    members = await backend.store.clear_chan(name)
    nodes = await backend.nodes.alive_nodes()
    await _publish(backend, {node: [payloads.clear(name)] for node in nodes})
    return members


async def get_chan_list(backend: Backend) -> list[tuple[str, int]]:
    """Every chan with its online member count."""
    return await backend.store.chan_list()


async def get_chan_page(backend: Backend, cursor: str = "", count: int = PAGE) -> Page[tuple[str, int]]:
    """About ``count`` chans with their online member counts, a page at a time (as
    :func:`get_client_page_by_online`)."""
    return await _page(backend.store.chan_page, cursor, count)


async def _page(read: Callable[[str, int], Awaitable[Page[T]]], cursor: str, count: int) -> Page[T]:
    if not 1 <= count <= MAX_PAGE:
        raise ValueError(f"count must be 1-{MAX_PAGE}, not {count!r}")
    try:
        return await read(cursor, count)
    except ValueError as error:
        raise BadCursor() from error


async def get_chan_list_by_client_id(backend: Backend, client_id: object) -> list[str]:
    """The chans a client is in."""
    return await backend.store.client_chans(ids.client_id(client_id))


async def get_chan_online(backend: Backend, chan: object) -> int:
    """How many online members ``chan`` has."""
    return await backend.store.chan_online(ids.chan(chan))


class SentChanMessage(NamedTuple):
    """One chan message as sent (what a history keeps)."""

    message_id: str
    sender: ClientId
    chan: str
    message: Any


def prepare_chan_message(sender: object, chan: object, message: Any, key: str | None = None
                         ) -> tuple[SentChanMessage, str]:
    """Check a chan message and give it its id (``key`` as for :func:`prepare_messages`) and frame."""
    name, source = ids.chan(chan), ids.client_id(sender)
    message_id = _message_id(source, key, message, name)
    frame = protocol.chan_frame(message_id, name, source, message)
    _checked(frame)
    return SentChanMessage(message_id, source, name, message), frame


async def deliver_chan_message(backend: Backend, sent: SentChanMessage, frame: str) -> None:
    """Send a prepared chan message to every member of its chan, only through the nodes that host one, and
    into the chan's stream, which a member that comes back catches up on."""
    at, nodes = await backend.store.store_chan_message(sent.chan, sent.message_id, frame)
    await _publish(backend, {node: [payloads.chan(sent.chan, frame, at)] for node in nodes})


async def forget_chan_stream(backend: Backend, chan: object) -> None:
    """Forget what ``chan``'s stream keeps for members that come back."""
    await backend.store.drop_chan_stream(ids.chan(chan))


class SentBroadcast(NamedTuple):
    """One broadcast as sent (``message_sent``'s ``message`` for a broadcast)."""

    message: Any


async def send_broadcast_message(backend: Backend, message: Any) -> None:
    """Send ``message`` to every connection on every node."""
    frame = protocol.broadcast_frame(message)
    _checked(frame)
    nodes = await backend.nodes.alive_nodes()
    await _publish(backend, {node: [payloads.broadcast(frame)] for node in nodes})
