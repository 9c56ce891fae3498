"""End to end through a real daphne: REST calls over HTTP, real WebSocket terminals.

One daphne process serves the whole module (tests/e2e/daphne_server.py); every test
leaves nobody online, which a fixture checks, so the tests do not depend on each other.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any
from unittest.mock import ANY

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from freeim.conf import DEFAULTS
from tests.e2e.daphne_server import JSON, NO_PROXY, PASSWORD, TOKEN_TTL, DaphneServer, User, fetch, fetch_answer, serve
from tests.frames import unpositioned
from tests.groups.helpers import MAKE_GROUP

pytest_plugins = ["tests.e2e.daphne_server"]  # daphne's log tail in the report of a failing test

USERS = {"alice": False, "bob": False, "carol": False, "dave": False, "staff": True}
FRAME_TIMEOUT = 5.0
QUIET_TIME = 0.3


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def daphne() -> Iterator[DaphneServer]:
    yield from serve(USERS)


def _user_fixture(name: str) -> Any:
    @pytest.fixture(name=name, scope="session")
    def user(daphne: DaphneServer) -> User:
        logged_in = User(daphne, name)
        logged_in.log_in()
        return logged_in

    return user


alice, bob, carol, dave, staff = (_user_fixture(name) for name in USERS)


@pytest.fixture(autouse=True)
async def nobody_left_online(staff: User) -> AsyncIterator[None]:
    """Each test closes what it opened: wait until the server has seen every socket go."""
    yield
    deadline = time.monotonic() + FRAME_TIMEOUT
    while (clients := (await staff.call("GET", "/im/online/"))[1]["clients"]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert clients == [], "a test left terminals online"


# --- helpers ----------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def terminals(*users: User) -> AsyncIterator[list[ClientConnection]]:
    """A socket per user given (name a user twice for two devices), all closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(await user.open()) for user in users]


async def expect_frame(ws: ClientConnection, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
    """The next frame on ``ws``, decoded; ``TimeoutError`` if none comes."""
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def expect_frames(*sockets: ClientConnection) -> list[dict[str, Any]]:
    """The next frame on each socket, waited for together."""
    return list(await asyncio.gather(*(expect_frame(ws) for ws in sockets)))


async def expect_no_frame(*sockets: ClientConnection) -> None:
    """Nothing arrives on any of ``sockets`` for a short while (call it after what should have come did)."""

    async def frame_or_none(ws: ClientConnection) -> dict[str, Any] | None:
        try:
            return await expect_frame(ws, QUIET_TIME)
        except TimeoutError:
            return None

    assert await asyncio.gather(*(frame_or_none(ws) for ws in sockets)) == [None] * len(sockets)


async def expect_close(ws: ClientConnection) -> int | None:
    """Wait for the server to close ``ws``; its close code, or None if it stays open."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ws.wait_closed(), FRAME_TIMEOUT)
    return ws.close_code


async def expect_rejected(url: str) -> None:
    """The handshake to ``url`` fails with HTTP 403."""
    with pytest.raises(InvalidStatus) as rejected:
        async with connect(url, proxy=None):
            pass
    assert rejected.value.response.status_code == 403


async def send(sender: User, to: list[User], data: Any, receipt: bool = False) -> str:
    """POST the message; its id."""
    status, body = await sender.call("POST", "/im/messages/", {"to": [u.id for u in to], "data": data,
                                                               "receipt": receipt})
    assert status == 202, body
    return body["id"]


async def join(user: User, chan: str) -> None:
    status, body = await user.call("POST", f"/im/chans/{chan}/join/")
    assert status == 200, body


async def wait_offline(observer: User, user: User) -> bool:
    """Whether the server reports ``user`` offline within the frame timeout (a close lands asynchronously)."""
    deadline = time.monotonic() + FRAME_TIMEOUT
    while await observer.sees_online(user):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# --- connecting -------------------------------------------------------------------------------------------------


async def test_connect_then_ping_gets_pong(alice):
    async with terminals(alice) as (ws,):
        await ws.send(json.dumps({"type": "ping"}))
        assert await expect_frame(ws) == {"type": "pong"}
        await ws.send(json.dumps({"type": "something-newer"}))  # unknown types are ignored, not errors
        await expect_no_frame(ws)


async def test_the_node_says_it_writes_to_daphnes_transports_directly(daphne, alice):
    async with terminals(alice):
        assert "frames written to daphne's Twisted transports directly (daphne 4." in daphne.log_tail(400)


async def test_online_follows_the_socket(alice, bob):
    assert not await bob.sees_online(alice)
    async with terminals(alice):
        assert await bob.sees_online(alice)
    assert await wait_offline(bob, alice)


async def test_scripts_authenticate_with_basic_auth(alice, daphne):
    url = f"{daphne.base}/im/connect/"
    anonymous = urllib.request.build_opener(NO_PROXY)
    assert (await asyncio.to_thread(fetch, anonymous, "POST", url))[0] == 401  # 401, not 403: Basic comes first
    credentials = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    status, body = await asyncio.to_thread(fetch, anonymous, "POST", url, b"{}",
                                           {"Authorization": f"Basic {credentials}", "Content-Type": JSON})
    assert status == 200 and body["client_id"] == alice.id, body
    async with connect(body["url"], proxy=None) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await expect_frame(ws) == {"type": "pong"}


async def test_bad_and_missing_tokens_are_rejected(daphne):
    await expect_rejected(f"ws://127.0.0.1:{daphne.port}/ws?token=not-a-token")
    await expect_rejected(f"ws://127.0.0.1:{daphne.port}/ws")


async def test_the_demo_under_plain_daphne_serves_its_static_files(daphne):
    """daphne serves no static files: the cluster demo's page stayed at "connecting..." (its scripts 404)."""
    opener = urllib.request.build_opener(NO_PROXY)
    for path in ("/static/freeim/freeim.js", "/static/chat/chat.js"):
        answer = await asyncio.to_thread(fetch_answer, opener, "GET", f"http://127.0.0.1:{daphne.port}{path}")
        assert answer.status == 200 and "javascript" in answer.content_type, (path, answer.status)


async def test_an_unknown_path_is_closed_with_4004(daphne):
    async with connect(f"ws://127.0.0.1:{daphne.port}/nope", proxy=None) as ws:
        assert await expect_close(ws) == 4004
    assert "No route found" not in daphne.log_tail(200)


async def test_a_token_works_once(alice):
    url = await alice.ticket()
    async with connect(url, proxy=None):
        await expect_rejected(url)


async def test_an_expired_token_is_rejected(alice):
    url = await alice.ticket()
    await asyncio.sleep(TOKEN_TTL + 0.2)
    await expect_rejected(url)


# --- messages ---------------------------------------------------------------------------------------------------


async def test_private_message_reaches_the_receiver_only(alice, bob, carol):
    data = {"text": "héllo", "n": [1, 2.5, None, True]}
    async with terminals(alice, bob, carol) as (a, b, c):
        sent = await send(alice, [bob], data)
        assert unpositioned(await expect_frame(b)) == {"type": "message", "id": sent, "from": alice.id, "data": data}
        await expect_no_frame(a, c)


async def test_every_device_of_the_receiver_gets_it(alice, bob):
    async with terminals(bob, bob) as (phone, laptop):
        sent = await send(alice, [bob], "to both")
        assert [unpositioned(f) for f in await expect_frames(phone, laptop)] == [
            {"type": "message", "id": sent, "from": alice.id, "data": "to both"}] * 2


async def test_a_message_to_oneself_skips_the_only_device(alice, bob):
    async with terminals(alice, bob) as (a, b):
        sent = await send(alice, [alice, bob], "hi all")
        got = unpositioned(await expect_frame(b))
        assert got == {"type": "message", "id": sent, "from": alice.id, "data": "hi all"}
        await expect_no_frame(a)


async def test_a_message_to_oneself_reaches_every_device_when_there_are_several(alice, bob):
    async with terminals(alice, alice, bob) as (a1, a2, b):
        sent = await send(alice, [alice, bob], "synced")
        frame = {"type": "message", "id": sent, "from": alice.id, "data": "synced"}
        assert [unpositioned(f) for f in await expect_frames(a1, a2, b)] == [frame] * 3


async def test_receipts_reach_the_sender(alice, bob, dave):
    async with terminals(alice, alice, bob) as (a1, a2, b):
        sent = await send(alice, [bob, dave], {"id": 7}, receipt=True)
        got = unpositioned(await expect_frame(b))
        assert got == {"type": "message", "id": sent, "from": alice.id, "data": {"id": 7}}
        expected = [{"type": "receipt", "id": sent, "to": bob.id, "status": "delivered"},
                    {"type": "receipt", "id": sent, "to": dave.id, "status": "offline"}]
        for ws in (a1, a2):
            got = [unpositioned(await expect_frame(ws)) for _ in range(2)]
            assert sorted(got, key=lambda f: f["to"]) == expected
        await expect_no_frame(a1, a2, b)


# --- chans ------------------------------------------------------------------------------------------------------


async def test_a_chan_message_reaches_the_members_only(alice, bob, carol):
    async with terminals(alice, bob, carol) as (a, b, c):
        await asyncio.gather(join(alice, "room-1"), join(bob, "room-1"))
        assert sorted(await carol.chan_members("room-1")) == sorted([alice.id, bob.id])
        status, body = await alice.call("POST", "/im/chans/room-1/messages/", {"data": {"text": "hi room"}})
        assert status == 202, body
        frame = {"type": "chan", "id": ANY, "chan": "room-1", "from": alice.id, "data": {"text": "hi room"}}
        assert [unpositioned(f) for f in await expect_frames(a, b)] == [frame, frame]
        await expect_no_frame(c)
        status, _ = await carol.call("POST", "/im/chans/room-1/messages/", {"data": "let me in"})
        assert status == 403
        await expect_no_frame(a, b, c)


async def test_joining_needs_an_open_socket(dave):
    status, body = await dave.call("POST", "/im/chans/room-2/join/")
    assert status == 409 and body["code"] == "client_offline"


async def test_a_chan_is_left_on_the_last_disconnect(alice, carol):
    async with terminals(carol):
        async with terminals(carol):
            await join(carol, "room-3")
            assert await alice.chan_members("room-3") == [carol.id]
        await asyncio.sleep(QUIET_TIME)  # the first socket's close has landed
        assert await alice.chan_members("room-3") == [carol.id]
    assert await wait_offline(alice, carol)
    assert await alice.chan_members("room-3") == []


# --- persistent groups (freeim.groups) ---------------------------------------------------------------------------


async def test_group_members_get_its_messages_without_joining(daphne, alice, bob, carol):
    await asyncio.to_thread(daphne._manage, "shell", "-c", MAKE_GROUP, GROUP="crew", MEMBERS=f"{alice.id},{bob.id}")
    async with terminals(alice, bob, carol) as (a, b, c):
        status, body = await alice.call("POST", "/im/groups/crew/messages/", {"data": {"text": "hi crew"}})
        assert status == 202, body
        frame = {"type": "chan", "id": ANY, "chan": "crew", "from": alice.id, "data": {"text": "hi crew"}}
        assert [unpositioned(f) for f in await expect_frames(a, b)] == [frame, frame]
        await expect_no_frame(c)
        status, _ = await carol.call("POST", "/im/groups/crew/messages/", {"data": "let me in"})
        assert status == 403
        status, body = await bob.call("GET", "/im/groups/crew/")
        assert status == 200 and sorted(body["online"]) == sorted([alice.id, bob.id])


# --- staff ------------------------------------------------------------------------------------------------------


async def test_a_broadcast_by_staff_reaches_everyone(alice, bob, staff):
    async with terminals(alice, bob, bob, staff) as (a, b1, b2, s):
        status, body = await staff.call("POST", "/im/broadcast/", {"data": {"notice": "maintenance"}})
        assert status == 202, body
        frame = {"type": "broadcast", "data": {"notice": "maintenance"}}
        assert await expect_frames(a, b1, b2, s) == [frame] * 4
        status, _ = await alice.call("POST", "/im/broadcast/", {"data": "me too"})
        assert status == 403
        await expect_no_frame(a, b1, b2, s)


async def test_force_offline_closes_every_socket_of_the_client(alice, bob, staff):
    async with terminals(bob, bob, alice) as (b1, b2, a):
        status, _ = await alice.call("POST", f"/im/online/{bob.id}/offline/")
        assert status == 403
        status, body = await staff.call("POST", f"/im/online/{bob.id}/offline/")
        assert status == 202, body
        assert [await expect_close(b1), await expect_close(b2)] == [4000, 4000]
        assert await wait_offline(staff, bob)
        await a.send(json.dumps({"type": "ping"}))  # the others stay connected
        assert await expect_frame(a) == {"type": "pong"}


# --- protocol errors -------------------------------------------------------------------------------------------
# Last in the module: a consumer that crashes here leaves its socket registered, which would skew later tests.


#: What a terminal must not send, and the close code it gets for it.
BAD_FRAMES = {"binary": (b"\x00\x01", 4001), "not JSON": ("not json", 4001), "not an object": ("[1, 2]", 4001),
              "too big": ("x" * 5000, 4003), "too deep": ("[" * 2000 + "]" * 2000, 4001)}


async def test_bad_frames_close_those_sockets_only(alice, bob):
    async with terminals(bob, *[alice] * len(BAD_FRAMES)) as (other, *offenders):
        for ws, (frame, _code) in zip(offenders, BAD_FRAMES.values(), strict=True):
            await ws.send(frame)
        codes = [await expect_close(ws) for ws in offenders]
        assert dict(zip(BAD_FRAMES, codes, strict=True)) == {name: code for name, (_, code) in BAD_FRAMES.items()}
        await other.send(json.dumps({"type": "ping"}))
        assert await expect_frame(other) == {"type": "pong"}
        sent = await send(alice, [bob], "still here")  # and the node loop still delivers
        got = unpositioned(await expect_frame(other))
        assert got == {"type": "message", "id": sent, "from": alice.id, "data": "still here"}


async def close_code_after_reading(ws: ClientConnection) -> int | None:
    """Read ``ws`` until the server closes it (a client that stops reading would not see the close frame)."""

    async def read_all() -> None:
        async for _ in ws:
            pass

    with contextlib.suppress(ConnectionClosed, TimeoutError):
        await asyncio.wait_for(read_all(), FRAME_TIMEOUT)
    return ws.close_code


#: How a terminal floods: with its own ``{"type":"ping"}`` frames, or WebSocket protocol pings.
FLOODS = {"app pings": lambda ws: ws.send(json.dumps({"type": "ping"})), "protocol pings": lambda ws: ws.ping(),
          "unasked protocol pongs": lambda ws: ws.pong()}


@pytest.mark.parametrize("flood", FLOODS)
async def test_a_terminal_that_sends_faster_than_the_rate_is_closed_with_4005(alice, bob, flood):
    async with terminals(bob, alice) as (other, flooder):
        with contextlib.suppress(ConnectionClosed):  # once the node closed it
            for _ in range(3 * DEFAULTS["MAX_INBOUND_RATE"]):
                await FLOODS[flood](flooder)
        assert await close_code_after_reading(flooder) == 4005
        await other.send(json.dumps({"type": "ping"}))
        assert await expect_frame(other) == {"type": "pong"}
