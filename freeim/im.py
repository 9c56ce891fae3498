"""The business-side API: FreeIM's helper methods, each with an async twin.

``send_message`` blocks the calling thread (DRF views, commands, Celery tasks);
``asend_message`` awaits (async views, consumers). Both run the same
generator from :mod:`freeim.operations` against the configured backend, so
neither goes through ``async_to_sync`` or a per-call event loop.

    from freeim import im
    im.send_message(sender=1, receivers=[2, 3], message={"text": "hi"}, receipt=True)
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from . import operations
from .operations import Op, arun, run

T = TypeVar("T")


def _twins(make: Callable[..., Op[T]]) -> tuple[Callable[..., T], Callable[..., Awaitable[T]]]:
    @functools.wraps(make)
    def sync(*args: Any, **kwargs: Any) -> T:
        return run(make(*args, **kwargs))

    @functools.wraps(make)
    async def asynchronous(*args: Any, **kwargs: Any) -> T:
        return await arun(make(*args, **kwargs))

    asynchronous.__name__ = asynchronous.__qualname__ = f"a{make.__name__}"
    return sync, asynchronous


prev_connect_server, aprev_connect_server = _twins(operations.prev_connect_server)
connect_ticket, aconnect_ticket = _twins(operations.connect_ticket)
send_message, asend_message = _twins(operations.send_message)
get_client_list_by_online, aget_client_list_by_online = _twins(operations.get_client_list_by_online)
has_online, ahas_online = _twins(operations.has_online)
force_offline, aforce_offline = _twins(operations.force_offline)
join_chan, ajoin_chan = _twins(operations.join_chan)
leave_chan, aleave_chan = _twins(operations.leave_chan)
get_chan_client_list, aget_chan_client_list = _twins(operations.get_chan_client_list)
clear_chan_client, aclear_chan_client = _twins(operations.clear_chan_client)
get_chan_list, aget_chan_list = _twins(operations.get_chan_list)
get_chan_list_by_client_id, aget_chan_list_by_client_id = _twins(operations.get_chan_list_by_client_id)
get_chan_online, aget_chan_online = _twins(operations.get_chan_online)
send_chan_message, asend_chan_message = _twins(operations.send_chan_message)
send_broadcast_message, asend_broadcast_message = _twins(operations.send_broadcast_message)

__all__ = [
    "aclear_chan_client", "aconnect_ticket", "aforce_offline", "aget_chan_client_list", "aget_chan_list",
    "aget_chan_list_by_client_id", "aget_chan_online", "aget_client_list_by_online", "ahas_online",
    "ajoin_chan", "aleave_chan", "aprev_connect_server", "asend_broadcast_message", "asend_chan_message",
    "asend_message", "clear_chan_client", "connect_ticket", "force_offline", "get_chan_client_list",
    "get_chan_list", "get_chan_list_by_client_id", "get_chan_online", "get_client_list_by_online",
    "has_online", "join_chan", "leave_chan", "prev_connect_server", "send_broadcast_message",
    "send_chan_message", "send_message",
]
