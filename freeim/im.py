"""The business-side API: FreeIM's helper methods, each with an async twin.

``send_message`` blocks the calling thread (DRF views, commands, Celery tasks);
``asend_message`` awaits (async views, consumers). Both run the same
coroutine from :mod:`freeim.messaging.operations`: the async twin awaits it on the
configured backend, the sync one runs it on the backend's blocking form, so
neither goes through ``async_to_sync`` or a per-call event loop.

    from freeim import im
    im.send_message(sender=1, receivers=[2, 3], message={"text": "hi"}, receipt=True)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast, overload

from asgiref.sync import sync_to_async

from . import ids, measures, signals
from .backends import Backend, get_backend, run_blocking
from .history import History, database_errors
from .history import configured as configured_history
from .messaging import operations
from .messaging.coalescing import coalescer

T = TypeVar("T")
P = ParamSpec("P")
#: Several client ids, for the overloads that answer one of them or many (a str is one id, not many).
ClientIds = list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any]


def _twins(operation: Callable[Concatenate[Backend, P], Coroutine[Any, Any, T]], public: bool = True
           ) -> tuple[Callable[P, T], Callable[P, Coroutine[Any, Any, T]]]:
    """The blocking and the awaiting form of one operation, with its parameters but the backend
    (for type checkers and IDEs); ``public`` ones timed (:func:`freeim.measures.timed`), as every
    helper is once, where it is called (a helper that runs another runs a private twin)."""

    @functools.wraps(operation)
    def sync(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_blocking(operation(get_backend().blocking(), *args, **kwargs))

    @functools.wraps(operation)
    async def asynchronous(*args: P.args, **kwargs: P.kwargs) -> T:
        return await operation(get_backend(), *args, **kwargs)

    asynchronous.__name__ = asynchronous.__qualname__ = f"a{operation.__name__}"
    return (measures.timed(sync), measures.timed(asynchronous)) if public else (sync, asynchronous)


def _to_history(call: Callable[[History], object]) -> None:
    """``call`` the configured history, if any, its database errors as freeim's (:func:`database_errors`)."""
    if history := configured_history():
        with database_errors():
            call(history)


async def _ato_history(call: Callable[[History], object]) -> None:
    """:func:`_to_history` through ``sync_to_async`` (a history may use the ORM), as Django's async ORM does."""
    if history := configured_history():
        with database_errors():
            await sync_to_async(call)(history)


def _announce(sent: Iterable[object]) -> None:
    """``message_sent`` for each of ``sent`` (nothing to do when no receiver listens)."""
    if signals.message_sent.has_listeners():
        for message in sent:
            signals.message_sent.send_robust(sender=None, message=message)


async def _aannounce(sent: Iterable[object]) -> None:
    """The async twin of :func:`_announce`."""
    if signals.message_sent.has_listeners():
        for message in sent:
            await signals.message_sent.asend_robust(sender=None, message=message)


prev_connect_server, aprev_connect_server = _twins(operations.prev_connect_server)
connect_ticket, aconnect_ticket = _twins(operations.connect_ticket)


@measures.timed
def send_messages(messages: Iterable[operations.Outgoing], receipt: bool = False) -> list[str]:
    """Send each ``(sender, receivers, message)`` (see :func:`send_message`; a fourth item is its ``key``) with
    one presence lookup and one write per node for them all; return their ids. The history keeps them
    first; ``message_stored`` follows for absent receivers."""
    return _send_messages(messages, receipt)


def _send_messages(messages: Iterable[operations.Outgoing], receipt: bool) -> list[str]:
    prepared = operations.prepare_messages(messages, receipt)
    backend = get_backend()  # first: a backend this process may not use keeps nothing in the history
    _to_history(lambda history: history.keep_messages(prepared.messages))
    sent = run_blocking(operations.deliver_messages(backend.blocking(), prepared))
    _announce(sent.messages)
    for waiting in sent.waiting if signals.message_stored.has_listeners() else ():
        signals.message_stored.send_robust(sender=None, **waiting._asdict())
    return [message.message_id for message in sent.messages]


@measures.timed
async def asend_messages(messages: Iterable[operations.Outgoing], receipt: bool = False) -> list[str]:
    """The async twin of :func:`send_messages`; the history runs through ``sync_to_async`` (it may use the ORM),
    as Django's async ORM methods do."""
    return await _asend_messages(messages, receipt)


async def _asend_messages(messages: Iterable[operations.Outgoing], receipt: bool) -> list[str]:
    prepared = operations.prepare_messages(messages, receipt)
    backend = get_backend()
    await _ato_history(lambda history: history.keep_messages(prepared.messages))
    sent = await coalescer(backend).deliver(prepared)  # with the other sends of this moment
    await _aannounce(sent.messages)
    for waiting in sent.waiting if signals.message_stored.has_listeners() else ():
        await signals.message_stored.asend_robust(sender=None, **waiting._asdict())
    return [message.message_id for message in sent.messages]


@measures.timed
def send_message(sender: object, receivers: object, message: Any, receipt: bool = False,
                 key: str | None = None) -> str:
    """Send ``message`` from ``sender`` to every connection of each of ``receivers``, and into each one's
    inbox; return its id. A receiver that is the sender gets it only on its other devices. With
    ``receipt`` the sender gets one receipt per receiver (``delivered``, ``offline``, later ``read``).
    A receiver with no socket gets it when it comes back; ``message_stored`` is sent for it now.
    ``key``: the sender's idempotency key; sent again with it, the message is the same one (same id),
    received and kept once."""
    [message_id] = _send_messages([(sender, receivers, message, key)], receipt)
    return message_id


@measures.timed
async def asend_message(sender: object, receivers: object, message: Any, receipt: bool = False,
                        key: str | None = None) -> str:
    """The async twin of :func:`send_message`."""
    [message_id] = await _asend_messages([(sender, receivers, message, key)], receipt)
    return message_id


_mark_read, _amark_read = _twins(operations.mark_read, public=False)


@measures.timed
def mark_read(reader: object, message_ids: object) -> int:
    """``reader`` read these messages (ids of message frames): the senders that asked for receipts get ``read``
    ones (return how many), and the history marks them read."""
    receipts = _mark_read(reader, message_ids)
    _to_history(lambda history: history.mark_read(ids.client_id(reader), list(cast(list[str], message_ids))))
    return receipts


@measures.timed
async def amark_read(reader: object, message_ids: object) -> int:
    """The async twin of :func:`mark_read`."""
    receipts = await _amark_read(reader, message_ids)
    await _ato_history(lambda history: history.mark_read(ids.client_id(reader), list(cast(list[str], message_ids))))
    return receipts


get_client_list_by_online, aget_client_list_by_online = _twins(operations.get_client_list_by_online)
get_client_page_by_online, aget_client_page_by_online = _twins(operations.get_client_page_by_online)
get_online_count, aget_online_count = _twins(operations.get_online_count)
_is_online, _ais_online = _twins(operations.is_online, public=False)
_which_online, _awhich_online = _twins(operations.which_online, public=False)


@overload
def has_online(client_id: ids.ClientId) -> bool: ...
@overload
def has_online(client_id: ClientIds) -> dict[ids.ClientId, bool]: ...
@measures.timed
def has_online(client_id: object) -> bool | dict[ids.ClientId, bool]:
    """Is one client online (``bool``), or which of a list are (``{id: bool}``)."""
    if isinstance(client_id, (int, str)):
        return _is_online(client_id)
    return _which_online(client_id)


@overload
async def ahas_online(client_id: ids.ClientId) -> bool: ...
@overload
async def ahas_online(client_id: ClientIds) -> dict[ids.ClientId, bool]: ...
@measures.timed
async def ahas_online(client_id: object) -> bool | dict[ids.ClientId, bool]:
    """The async twin of :func:`has_online`."""
    if isinstance(client_id, (int, str)):
        return await _ais_online(client_id)
    return await _awhich_online(client_id)


get_client_nodes, aget_client_nodes = _twins(operations.get_client_nodes)
force_offline, aforce_offline = _twins(operations.force_offline)
join_chan, ajoin_chan = _twins(operations.join_chan)
leave_chan, aleave_chan = _twins(operations.leave_chan)
get_chan_client_list, aget_chan_client_list = _twins(operations.get_chan_client_list)
clear_chan_client, aclear_chan_client = _twins(operations.clear_chan_client)
get_chan_list, aget_chan_list = _twins(operations.get_chan_list)
get_chan_page, aget_chan_page = _twins(operations.get_chan_page)
get_chan_list_by_client_id, aget_chan_list_by_client_id = _twins(operations.get_chan_list_by_client_id)
get_chan_online, aget_chan_online = _twins(operations.get_chan_online)


_deliver_chan_message, _adeliver_chan_message = _twins(operations.deliver_chan_message, public=False)


@measures.timed
def send_chan_message(sender: object, chan: object, message: Any, key: str | None = None) -> str:
    """Send ``message`` to every member of ``chan`` (the history keeps it first); return its id (``key`` as for
    :func:`send_message`)."""
    sent, frame = operations.prepare_chan_message(sender, chan, message, key)
    get_backend()  # first, as for send_messages
    _to_history(lambda history: history.keep_chan_message(sent))
    _deliver_chan_message(sent, frame)
    _announce([sent])
    return sent.message_id


@measures.timed
async def asend_chan_message(sender: object, chan: object, message: Any, key: str | None = None) -> str:
    """The async twin of :func:`send_chan_message`."""
    sent, frame = operations.prepare_chan_message(sender, chan, message, key)
    get_backend()
    await _ato_history(lambda history: history.keep_chan_message(sent))
    await _adeliver_chan_message(sent, frame)
    await _aannounce([sent])
    return sent.message_id


_forget_chan_stream, _aforget_chan_stream = _twins(operations.forget_chan_stream, public=False)


@measures.timed
def forget_chan(chan: object, history_to: object = None) -> None:
    """Forget what ``chan`` kept: its stream (what members that come back catch up on) and its history, or
    move the history to ``history_to``. For a chan whose name goes to others next: a group deleted, or
    renamed (``history_to``: its new name), so they never read what was said before."""
    _forget_chan_stream(chan)
    _to_history(_forgetting(chan, history_to))


@measures.timed
async def aforget_chan(chan: object, history_to: object = None) -> None:
    """The async twin of :func:`forget_chan`."""
    await _aforget_chan_stream(chan)
    await _ato_history(_forgetting(chan, history_to))


def _forgetting(chan: object, history_to: object) -> Callable[[History], None]:
    name, to = ids.chan(chan), None if history_to is None else ids.chan(history_to)
    return lambda history: history.forget_chan(name, to)


_send_broadcast_message, _asend_broadcast_message = _twins(operations.send_broadcast_message, public=False)


@measures.timed
def send_broadcast_message(message: Any) -> None:
    """Send ``message`` to every connection on every node (kept nowhere: whoever is connected gets it)."""
    _send_broadcast_message(message)
    _announce([operations.SentBroadcast(message)])


@measures.timed
async def asend_broadcast_message(message: Any) -> None:
    """The async twin of :func:`send_broadcast_message`."""
    await _asend_broadcast_message(message)
    await _aannounce([operations.SentBroadcast(message)])

__all__ = [
    "aclear_chan_client", "aconnect_ticket", "aforce_offline", "aforget_chan", "aget_chan_client_list",
    "aget_chan_list", "aget_chan_list_by_client_id", "aget_chan_online", "aget_chan_page",
    "aget_client_list_by_online", "aget_client_nodes", "aget_client_page_by_online", "aget_online_count",
    "ahas_online", "ajoin_chan", "aleave_chan", "amark_read", "aprev_connect_server", "asend_broadcast_message",
    "asend_chan_message", "asend_message", "asend_messages", "clear_chan_client", "connect_ticket", "force_offline",
    "forget_chan", "get_chan_client_list", "get_chan_list", "get_chan_list_by_client_id", "get_chan_online",
    "get_chan_page", "get_client_list_by_online", "get_client_nodes", "get_client_page_by_online", "get_online_count",
    "has_online", "join_chan", "leave_chan", "mark_read", "prev_connect_server", "send_broadcast_message",
    "send_chan_message", "send_message", "send_messages",
]
