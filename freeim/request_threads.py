"""Django's sync code of an HTTP request on a thread kept for the next request, not on one started for it.

Django's ASGI handler runs each request in an asgiref ``ThreadSensitiveContext``: the request's sync
code (the request signals' receivers, sync middleware and views, rendering and closing the response)
runs on a thread of its own, which asgiref starts when the request first needs it and joins, from one
more new thread, when the request ends. Measured on a 2-core VM, that is about 1 ms of CPU per
request, more than the rest of a small request (``bench/connect_load.py``). :func:`borrowed` enters
that context first, with a single-thread executor kept from an earlier request; Django's own context
then sees one set and adds nothing. Each request's sync code still runs on one thread, each request
in flight on its own, as with Django; the thread just outlives the request, as a WSGI server's
threads do (its database connections too, closed or kept by Django's request signals as under WSGI).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

#: Idle threads kept for the next requests; past it, a request's thread ends with the request.
KEEP_IDLE = 64


class RequestThread(ThreadPoolExecutor):
    """One thread serving one request at a time, which knows whether it still runs a call: a request
    cancelled while its sync code ran leaves that call running, and its thread is not lent again."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="freeim-request")
        self.submitted = 0  # written by the event loop's thread only
        self.finished = 0  # and this by the executor's thread only: no update is lost

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(self._counted, fn, *args, **kwargs)

    def _counted(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            self.finished += 1

    @property
    def idle(self) -> bool:
        return self.finished == self.submitted


_idle: list[RequestThread] = []


@contextlib.asynccontextmanager
async def borrowed() -> AsyncIterator[None]:
    """Run the thread-sensitive sync code of the block (a request) on an idle kept thread, or a new one."""
    thread = _idle.pop() if _idle else RequestThread()
    try:
        async with ThreadSensitiveContext(executor=thread):
            yield
    finally:
        if thread.idle and len(_idle) < KEEP_IDLE:
            _idle.append(thread)
        else:
            thread.shutdown(wait=False)


def forget() -> None:
    """End the kept threads (tests: each starts without threads, or database connections, of an earlier one)."""
    while _idle:
        _idle.pop().shutdown()
