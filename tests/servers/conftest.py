"""The daphne adapter is tested on daphne's, autobahn's and Twisted's real objects, in this process.

daphne.server installs Twisted's asyncio reactor when imported (on a loop of its own that never
runs here): it must come before anything imports Twisted's default reactor.
"""

import daphne.server  # noqa: F401  isort:skip
import pytest

from freeim.servers import daphne


@pytest.fixture(autouse=True)
def serving(monkeypatch):
    """daphne serving this process: its reactor runs (here it is only marked so). The adapter decides
    once per process whether daphne's internals are usable; each test decides anew."""
    from twisted.internet import reactor

    monkeypatch.setattr(reactor, "running", True)
    daphne.unsupported.cache_clear()
    yield
    daphne.unsupported.cache_clear()
