"""SIGTERM drains the node before the server stops: freeim's handler goes in front of the server's.

Servers stop on SIGTERM by closing their sockets (uvicorn with 1012, daphne by cancelling every consumer,
hypercorn after its graceful timeout) and only then run the application's shutdown: too late to move the
terminals to other nodes. So a node puts its own handler in front: on SIGTERM it runs the drain, then hands the
signal to the server's handler, which stops the server as it would have. A second SIGTERM goes straight to the
server's handler (stop now). SIGINT (Ctrl-C) is left alone: it stops at once.

daphne (Twisted) and uvicorn install their handlers with :func:`signal.signal`; hypercorn, when it serves in the
process that gets the signal (``--workers 0``), with the loop's ``add_signal_handler``, which keeps them where only
asyncio's private ``_signal_handlers`` shows them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("freeim.node")
_installed = False


def drain_first(drain: Callable[[], Awaitable[None]]) -> bool:
    """On SIGTERM, run ``drain`` on the running loop before the server's own handler (once per process);
    False where no handler can be put in front (not the main thread: signals only reach that one)."""
    global _installed
    if _installed:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    loop = asyncio.get_running_loop()
    registered: asyncio.Handle | None = getattr(loop, "_signal_handlers", {}).get(signal.SIGTERM)
    server: Callable[[], None]
    if registered is not None:  # the loop dispatches SIGTERM (hypercorn): take its place there; its handler
        server = registered._run  # only sets an event, so once is enough

        loop.add_signal_handler(signal.SIGTERM, lambda: _begin(loop, drain, stop))
    else:
        previous = signal.getsignal(signal.SIGTERM)

        def server() -> None:
            signal.signal(signal.SIGTERM, previous)
            if callable(previous):
                previous(signal.SIGTERM, None)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, lambda _signum, _frame: _begin(loop, drain, stop))
    handed_over = False

    def stop(_drained: object = None) -> None:
        """The server's handler, once: a second SIGTERM hands over too, and Twisted's stop raises when called twice."""
        nonlocal handed_over
        if not handed_over:
            handed_over = True
            server()

    _installed = True
    return True


def _begin(loop: asyncio.AbstractEventLoop, drain: Callable[[], Awaitable[None]],
           stop: Callable[[object], None]) -> None:
    """Start the drain on ``loop``; ``stop`` hands the signal to the server once it ends (at once if the loop is
    gone). A second SIGTERM lands here too: the drain under way makes it return at once, so the server stops now."""

    def drain_then_stop() -> None:
        loop.create_task(_drained(drain)).add_done_callback(stop)

    try:
        loop.call_soon_threadsafe(drain_then_stop)
    except RuntimeError:  # the loop closed: nothing to drain
        stop(None)


async def _drained(drain: Callable[[], Awaitable[Any]]) -> None:
    try:
        await drain()
    except Exception:  # the server stops all the same; its shutdown takes the node's presence off
        logger.exception("freeim: the drain failed; stopping now")
