"""Test helpers for projects using freeim (and for freeim's own tests).

With pytest, the plugin (:mod:`freeim.testing.pytest_plugin`, loaded by itself once django-freeim is
installed) gives every test a fresh embedded node and the fixtures ``freeim_outbox``, ``freeim_signals`` and
``freeim_terminal``; with Django's runner, :class:`FreeIMTestMixin` does the same::

    async def test_hello(freeim_terminal, freeim_outbox):
        async with freeim_terminal(1) as alice:
            await im.asend_message(2, [1], "hi")
            assert (await alice.receive_frame())["data"] == "hi"
        assert freeim_outbox[0].receivers == [1]
"""

from typing import Any

from .capture import Sent, SignalRecorder, captured_sends, eventually, recorded_signals
from .isolation import FreeIMTestMixin, isolated

_TERMINAL = ("FreeIMCommunicator", "connected", "terminal")


def __getattr__(name: str) -> Any:
    """The terminal's names, imported on first use: channels' test communicator imports daphne, which a project
    served by uvicorn or hypercorn may not have, and the pytest plugin loads this package in every test run."""
    if name in _TERMINAL:
        from . import communicator

        return getattr(communicator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "FreeIMCommunicator", "FreeIMTestMixin", "Sent", "SignalRecorder", "captured_sends", "connected", "eventually",
    "isolated", "recorded_signals", "terminal",
]
