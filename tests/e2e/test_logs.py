"""What a real daphne node prints: each failing receiver once, connects, refusals and closes with the client id
and the node, and never a connect token (neither in freeim's lines nor in daphne's access log)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.daphne_server import DaphneServer, User, serve
from tests.e2e.failing.receivers import BUG
from tests.waiting import eventually

pytest_plugins = ["tests.e2e.daphne_server"]  # daphne's log tail in the report of a failing test


@pytest.fixture(scope="module")
def daphne() -> Iterator[DaphneServer]:
    yield from serve({"alice": False}, DJANGO_SETTINGS_MODULE="tests.e2e.logging_settings")


@pytest.fixture(scope="module")
def alice(daphne: DaphneServer) -> User:
    user = User(daphne, "alice")
    user.log_in()
    return user


def log(daphne: DaphneServer) -> str:
    return daphne.log_path.read_text(errors="replace")


async def test_the_node_prints_connects_refusals_and_closes_and_never_a_token(daphne, alice):
    url = await alice.ticket()
    token = parse_qs(urlsplit(url).query)["token"][0]
    async with connect(url, proxy=None) as terminal:
        with pytest.raises(InvalidStatus):
            await connect(url, proxy=None)  # used
        await terminal.send("not json")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(terminal.recv(), 5)
        assert terminal.close_code == 4001
    node = "freeim node local"  # the embedded demo's node
    lines = [f"{node}: client {alice.id} connected; sockets here: 1 of its own, 1 in all",
             f"{node}: refused a handshake from 127.0.0.1: unknown, expired or used token",
             f"{node}: closing a socket of client {alice.id} with 4001 (protocol error)",
             f"{node}: client {alice.id} disconnected with "]
    await eventually(lambda: all(line in log(daphne) for line in lines))
    assert token not in log(daphne)


async def test_a_failing_receiver_is_printed_once_per_event(daphne, alice):
    """Django's own line (on ``django.dispatch``) came out twice here: its console handler (``DEBUG`` is on) printed
    it, and so did the root logger's handler daphne adds."""
    before = len(log(daphne))

    def since_before() -> str:
        return log(daphne)[before:]

    async with connect(await alice.ticket(), proxy=None):
        await eventually(lambda: "of client_online raised" in since_before())
    await eventually(lambda: "of client_offline raised" in since_before())
    await asyncio.sleep(0.5)  # a second copy of a line comes right after the first, if at all
    assert since_before().count(f"RuntimeError: {BUG}") == 2  # online, offline: each once, with its traceback
