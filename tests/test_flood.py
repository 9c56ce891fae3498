"""A stalling terminal costs a real daphne node a bounded amount of time.

One node serves the module, with a short handshake timeout.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.daphne_server import DaphneServer, serve

pytest_plugins = ["tests.daphne_server"]

USERS = {"flooder": False, "canary": False}
HANDSHAKE_TIMEOUT = 2


@pytest.fixture(scope="module")
def node() -> Iterator[DaphneServer]:
    yield from serve(USERS, handshake_timeout=HANDSHAKE_TIMEOUT)


async def test_a_handshake_that_stalls_is_dropped_after_the_timeout(node):
    with socket.create_connection(("127.0.0.1", node.port), timeout=HANDSHAKE_TIMEOUT * 3) as stalled:
        stalled.sendall(b"GET /ws?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: web")  # and nothing more
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            while stalled.recv(4096):  # until the node closes it (a timeout here fails the test)
                pass
        waited = time.monotonic() - started
    assert HANDSHAKE_TIMEOUT * 0.8 < waited < HANDSHAKE_TIMEOUT + 1.5
