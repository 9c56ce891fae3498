"""The consumer and the node loop through channels' test communicator."""

import asyncio
import contextlib
import time
from unittest.mock import ANY

import pytest

from freeim import autojoin, im, signals
from freeim.backends import get_backend
from freeim.conf import conf
from freeim.node.lifecycle import ensure_node
from freeim.testing import FreeIMCommunicator, connected
from tests.asgi import application
from tests.frames import unpositioned


async def rejected(path):
    communicator = FreeIMCommunicator(application, f"ws://testserver{path}")
    accepted, _ = await communicator.connect()
    await communicator.disconnect()
    return not accepted


async def test_missing_unknown_and_reused_tokens_are_rejected():
    assert await rejected("/ws")
    assert await rejected("/ws?token=")
    assert await rejected("/ws?token=not-a-token")
    url = await im.aprev_connect_server(1, base="ws://testserver")
    first = FreeIMCommunicator(application, url)
    assert (await first.connect())[0]
    assert await rejected(url.removeprefix("ws://testserver"))
    await first.disconnect()


async def test_expired_token_is_rejected(monkeypatch):
    url = await im.aprev_connect_server(1, base="ws://testserver")
    later = time.monotonic() + conf.TOKEN_TTL + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert await rejected(url.removeprefix("ws://testserver"))


async def test_token_for_another_node_is_rejected():
    await get_backend().store.issue_token("elsewhere", {"client_id": 1, "meta": "", "server": "other:6002"}, 10)
    assert await rejected("/ws?token=elsewhere")


async def test_ping_gets_pong_and_unknown_types_are_ignored():
    async with connected(application, 1) as alice:
        await alice.send_to(text_data='{"type": "future-thing"}')
        await alice.send_to(text_data='{"type": "ping"}')
        assert await alice.receive_frame() == {"type": "pong"}


@pytest.mark.parametrize(("frame", "code"), [({"bytes_data": b"\x01"}, 4001), ({"text_data": "nope"}, 4001),
                                             ({"text_data": "[]"}, 4001), ({"text_data": " " * 5000}, 4003)])
async def test_bad_frames_close_with_documented_codes(frame, code):
    alice = await FreeIMCommunicator.open(application, 1)
    async with connected(application, 2) as bob:
        await alice.send_to(**frame)
        assert await alice.receive_close() == code
        await alice.disconnect()
        await im.asend_message(1, [2], "still serving")
        assert (await bob.receive_frame())["data"] == "still serving"
    assert await im.ahas_online(1) is False


async def test_online_and_offline_signals_fire_once_per_client():
    events = []

    async def on_online(client_id, meta, server, **kwargs):
        events.append(("online", client_id, meta, server))

    def on_offline(client_id, meta, server, **kwargs):  # a sync receiver works too
        events.append(("offline", client_id, meta, server))

    signals.client_online.connect(on_online)
    signals.client_offline.connect(on_offline)
    try:
        first = await FreeIMCommunicator.open(application, 5, meta="web")
        second = await FreeIMCommunicator.open(application, 5, meta="ios")
        await first.disconnect()
        await second.disconnect()
        await im.asend_broadcast_message("flush")  # the node dispatches events on its loop; let it run
        node = await ensure_node()
        await node.events.settled()
    finally:
        signals.client_online.disconnect(on_online)
        signals.client_offline.disconnect(on_offline)
    assert events == [("online", 5, "web", "local"), ("offline", 5, "ios", "local")]


async def test_a_failing_receiver_is_logged_once_and_later_receivers_and_events_still_run(caplog):
    """A receiver that raises must neither break the connect nor stop the node's event dispatch."""
    seen = []

    async def broken(**kwargs):
        raise RuntimeError("receiver bug")

    async def working(client_id, **kwargs):
        seen.append(client_id)

    signals.client_online.connect(broken)
    signals.client_online.connect(working)
    try:
        async with connected(application, 1) as alice:
            await alice.send_to(text_data='{"type": "ping"}')
            assert await alice.receive_frame() == {"type": "pong"}
        async with connected(application, 2):
            await (await ensure_node()).events.settled()
    finally:
        signals.client_online.disconnect(broken)
        signals.client_online.disconnect(working)
    assert seen == [1, 2]  # after the broken one, for both: the dispatch task lived on
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(failures) == 2
    assert all(r.name == "freeim.signals" and "receiver bug" in str(r.exc_info[1]) for r in failures)


async def test_slow_consumer_is_closed_with_4002_and_others_still_get_everything(settings):
    settings.FREEIM = {"MAX_BACKLOG_BYTES": 200}
    slow = await FreeIMCommunicator.open(application, 1)
    async with connected(application, 2) as healthy:
        node = await ensure_node()
        # Three frames for the slow one queue up in one batch before any flush: past 200 bytes.
        padded = [f'{{"n":{i},"pad":"{"x" * 80}"}}' for i in range(3)]
        node.delivery.receive([{"op": "send", "to": [1, 2], "frame": padded[0]},
                                *({"op": "send", "to": [1], "frame": frame} for frame in padded[1:])])
        assert await slow.receive_close() == 4002
        assert (await healthy.receive_frame())["n"] == 0
        await im.asend_message(3, [1, 2], "after")
        assert (await healthy.receive_frame())["data"] == "after"
    await slow.disconnect()


async def test_stop_node_removes_presence_in_bulk():
    from freeim.node.lifecycle import stop_node

    alice = await FreeIMCommunicator.open(application, 1)
    await im.ajoin_chan(1, "room")
    await stop_node()
    assert await im.ahas_online(1) is False and await im.aget_chan_list() == []
    await alice.disconnect()


async def test_a_crashing_consumer_still_takes_its_client_offline(monkeypatch):
    from freeim import protocol

    def broken(text, binary):
        raise RuntimeError("bug in a frame handler")

    alice = await FreeIMCommunicator.open(application, 1)
    await im.ajoin_chan(1, "room")
    monkeypatch.setattr(protocol, "parse_inbound", broken)
    await alice.send_to(text_data='{"type": "ping"}')
    with pytest.raises(RuntimeError):
        await alice.wait(1)
    assert await im.ahas_online(1) is False and await im.aget_chan_list() == []


async def test_a_handshake_that_cannot_get_a_slot_in_time_is_refused(monkeypatch):
    from freeim.node import runtime as node_module

    node = await ensure_node()
    monkeypatch.setattr(node_module, "HANDSHAKE_WAIT", 0.05)
    for _ in range(node_module.HANDSHAKE_CONCURRENCY):
        await node.handshakes.acquire()  # a storm holds every slot
    try:
        url = await im.aprev_connect_server(1, base="ws://testserver")
        assert await rejected(url.removeprefix("ws://testserver"))
    finally:
        for _ in range(node_module.HANDSHAKE_CONCURRENCY):
            node.handshakes.release()
    async with connected(application, 1) as alice:
        await alice.send_to(text_data='{"type": "ping"}')
        assert await alice.receive_frame() == {"type": "pong"}


@pytest.fixture
def provider():
    """An auto-join provider giving client 1 two chans (one twice) and everyone else none."""
    def chans(client_id):
        return ["news", "team", "news"] if client_id == 1 else []

    autojoin.register(chans)
    yield chans
    autojoin.unregister(chans)


async def test_auto_join_chans_are_joined_before_the_socket_opens(provider):
    async with connected(application, 1) as alice:
        assert sorted(await im.aget_chan_list_by_client_id(1)) == ["news", "team"]
        await im.asend_chan_message(2, "team", "first")
        assert unpositioned(await alice.receive_frame()) == {"type": "chan", "id": ANY, "chan": "team", "from": 2,
                                                             "data": "first"}
        async with connected(application, 3):
            assert await im.aget_chan_list_by_client_id(3) == []
    assert await im.aget_chan_list() == []  # left with the last disconnect


async def test_a_failing_or_invalid_provider_is_logged_and_the_client_still_connects(provider, caplog):
    def broken(client_id):
        raise RuntimeError("database down")

    def invalid(client_id):
        return ["no spaces allowed"]

    for bad in (broken, invalid):
        autojoin.register(bad)
    try:
        async with connected(application, 1):
            assert sorted(await im.aget_chan_list_by_client_id(1)) == ["news", "team"]
    finally:
        for bad in (broken, invalid):
            autojoin.unregister(bad)
    assert caplog.text.count("auto-join provider") == 2


async def test_a_token_that_names_its_client_in_another_form_reaches_the_same_client():
    """A token made by hand (the business side may issue its own) named client "42" as a string: the
    node kept it under "42" while every message to it names 42, and none arrived."""
    token = "hand-made-token"
    await get_backend().store.issue_token(token, {"client_id": "42", "meta": "", "server": "local"}, 30)
    terminal = FreeIMCommunicator(application, f"ws://testserver/ws?token={token}")
    assert (await terminal.connect())[0]
    try:
        sent = await im.asend_message(1, ["42"], "hi")
        assert unpositioned(await terminal.receive_frame()) == {"type": "message", "id": sent, "from": 1, "data": "hi"}
    finally:
        await terminal.disconnect()


async def test_a_token_that_names_no_valid_client_is_refused():
    await get_backend().store.issue_token("bad-id-token", {"client_id": "", "meta": "", "server": "local"}, 30)
    terminal = FreeIMCommunicator(application, "ws://testserver/ws?token=bad-id-token")
    assert not (await terminal.connect())[0]


async def test_a_handshake_cut_short_after_the_store_had_its_connection_still_takes_it_off(monkeypatch):
    """A handshake cancelled (its terminal gave up, the server ended its consumer) while its connection was being
    added to the store: the store may have it all the same, the step being sent, and nothing took it off. A
    reconnect storm (bench/storm.py) left up to hundreds of clients online after every terminal had left."""
    node = await ensure_node()
    store = node.backend.store
    add_connection = store.add_connection

    async def added_then_cut_short(*args, **kwargs):
        await add_connection(*args, **kwargs)
        raise asyncio.CancelledError  # as the handshake's task is cancelled while the store's reply comes back

    monkeypatch.setattr(store, "add_connection", added_then_cut_short)
    url = await im.aprev_connect_server(1, base="ws://testserver")
    communicator = FreeIMCommunicator(application, url)
    with contextlib.suppress(BaseException):
        await communicator.connect()
    monkeypatch.undo()
    await node.attachments.release_pending()  # what the node's upkeep runs
    assert await im.ahas_online(1) is False


async def test_a_disconnect_cut_short_before_the_store_took_the_connection_off_still_takes_it_off(monkeypatch):
    node = await ensure_node()
    store = node.backend.store
    alice = await FreeIMCommunicator.open(application, 1)

    async def cut_short(*args, **kwargs):
        raise asyncio.CancelledError  # as the consumer's task is cancelled before the store's step is sent

    monkeypatch.setattr(store, "remove_connection", cut_short)
    with contextlib.suppress(BaseException):
        await alice.disconnect()
    monkeypatch.undo()
    assert await im.ahas_online(1) is True
    await node.attachments.release_pending()
    assert await im.ahas_online(1) is False
