"""The helper API over real consumers (channels' test communicator), embedded backend."""

import asyncio
from unittest.mock import ANY

import pytest
from django.db import DataError, OperationalError

from freeim import autojoin, im
from freeim.backends import Backend, get_backend
from freeim.exceptions import (
    ClientOffline,
    HistoryUnavailable,
    InvalidChan,
    InvalidMessage,
    NoConnectBase,
    TooManyChans,
)
from freeim.messaging import operations
from freeim.testing import FreeIMCommunicator, connected
from tests.asgi import application
from tests.frames import unpositioned
from tests.transports import HeldTransport


async def no_frame(communicator):
    assert await communicator.receive_nothing(timeout=0.1)


async def test_private_message_multi_device_and_receipts():
    async with connected(application, 1) as alice, connected(application, 2) as bob1, \
            connected(application, 2) as bob2:
        sent = await im.asend_message(1, [2, 3], {"text": "hi"}, receipt=True)
        for bob in (bob1, bob2):
            got = unpositioned(await bob.receive_frame())
            assert got == {"type": "message", "id": sent, "from": 1, "data": {"text": "hi"}}
        receipts = [unpositioned(await alice.receive_frame()) for _ in range(2)]
        assert sorted(receipts, key=lambda r: r["to"]) == [  # they name the message, never carry it
            {"type": "receipt", "id": sent, "to": 2, "status": "delivered"},
            {"type": "receipt", "id": sent, "to": 3, "status": "offline"}]


async def test_sender_gets_own_message_only_on_other_devices():
    async with connected(application, 1) as alice, connected(application, 2) as bob:
        await im.asend_message(1, [1, 2], "one device")
        assert (await bob.receive_frame())["data"] == "one device"
        await no_frame(alice)
        async with connected(application, 1) as alice2:
            await im.asend_message(1, [1, 2], "two devices")
            for terminal in (alice, alice2, bob):
                assert (await terminal.receive_frame())["data"] == "two devices"


async def test_a_batch_of_messages_arrives_in_order_with_its_receipts():
    async with connected(application, 1) as alice, connected(application, 2) as bob, \
            connected(application, 3) as carol:
        first, second, third = await im.asend_messages(
            [(1, [2], "first"), (3, [2, 1], "second"), (1, [2, 9], "third")], receipt=True)
        assert [(await bob.receive_frame())["data"] for _ in range(3)] == ["first", "second", "third"]
        got = unpositioned(await alice.receive_frame())
        assert got == {"type": "message", "id": second, "from": 3, "data": "second"}
        receipts = [await alice.receive_frame() for _ in range(3)]
        assert sorted((r["id"], r["to"], r["status"]) for r in receipts) == sorted([
            (first, 2, "delivered"), (third, 2, "delivered"), (third, 9, "offline")])
        assert sorted((r["to"], r["status"]) for r in [await carol.receive_frame(), await carol.receive_frame()]) \
            == [(1, "delivered"), (2, "delivered")]


async def test_a_batch_with_one_bad_message_sends_none():
    async with connected(application, 2) as bob:
        with pytest.raises(InvalidMessage):
            await im.asend_messages([(1, [2], "fine"), (1, [2], object())])
        await no_frame(bob)


async def test_string_and_numeric_string_ids_are_one_client():
    async with connected(application, "7") as seven, connected(application, "bob"):
        sent = await im.asend_message("bob", [7], "x")
        assert unpositioned(await seven.receive_frame()) == {"type": "message", "id": sent, "from": "bob", "data": "x"}
        # keyed as asked: has_online(["2"])[2] was the only key, so ["2"] raised KeyError
        assert await im.ahas_online(["7", 7, "bob", "carol"]) == {"7": True, 7: True, "bob": True, "carol": False}
        assert im.has_online(("7",)) == {"7": True} and im.has_online(iter([7])) == {7: True}
        assert await im.ahas_online("7") is True
        assert sorted(map(str, await im.aget_client_list_by_online())) == ["7", "bob"]


async def test_chans_deliver_to_members_only_and_are_left_on_last_disconnect():
    async with connected(application, 1) as alice, connected(application, 2) as bob, \
            connected(application, 3) as carol:
        await im.ajoin_chan(1, "room", "lobby")
        await im.ajoin_chan(2, "room")
        assert await im.aget_chan_list() == [("lobby", 1), ("room", 2)]
        assert await im.aget_chan_online("room") == 2
        assert sorted(await im.aget_chan_client_list("room")) == [1, 2]
        assert await im.aget_chan_list_by_client_id(1) == ["lobby", "room"]
        await im.asend_chan_message(3, "room", "hello room")
        for member in (alice, bob):
            got = unpositioned(await member.receive_frame())
            assert got == {"type": "chan", "id": ANY, "chan": "room", "from": 3, "data": "hello room"}
        await no_frame(carol)
        await im.aleave_chan(2, "room")
        assert await bob.receive_frame() == {"type": "left", "chan": "room"}  # told, on each of its sockets
        await im.asend_chan_message(1, "room", "after leave")
        assert (await alice.receive_frame())["data"] == "after leave"
        await no_frame(bob)
    assert await im.aget_chan_list() == []


async def test_clear_chan_stops_delivery():
    async with connected(application, 1) as alice:
        await im.ajoin_chan(1, "room")
        assert await im.aclear_chan_client("room") == [1]
        assert await alice.receive_frame() == {"type": "left", "chan": "room"}
        await im.asend_chan_message(1, "room", "nobody")
        await no_frame(alice)
        assert await im.aget_chan_list_by_client_id(1) == []


async def test_broadcast_reaches_every_connection():
    async with connected(application, 1) as a, connected(application, 2) as b, connected(application, 2) as b2:
        await im.asend_broadcast_message({"n": 1})
        for terminal in (a, b, b2):
            assert await terminal.receive_frame() == {"type": "broadcast", "data": {"n": 1}}


async def test_force_offline_closes_every_connection_with_4000():
    bob1 = await FreeIMCommunicator.open(application, 2)
    bob2 = await FreeIMCommunicator.open(application, 2)
    await im.aforce_offline(2)
    assert [await bob1.receive_close(), await bob2.receive_close()] == [4000, 4000]
    await bob1.disconnect()
    await bob2.disconnect()
    assert await im.ahas_online(2) is False


async def test_sync_twins_work_from_a_worker_thread():
    async with connected(application, 1) as alice:
        sent = await asyncio.to_thread(im.send_message, 2, [1], "from a thread")
        got = unpositioned(await alice.receive_frame())
        assert got == {"type": "message", "id": sent, "from": 2, "data": "from a thread"}
        await asyncio.to_thread(im.join_chan, 1, "room")
        assert await asyncio.to_thread(im.get_chan_list) == [("room", 1)]


async def test_bad_input_is_rejected_before_anything_is_sent():
    async with connected(application, 1) as alice:
        with pytest.raises(InvalidMessage):
            await im.asend_message(2, [1], object())
        with pytest.raises(InvalidMessage):
            await im.asend_broadcast_message("x" * 70_000)
        with pytest.raises(InvalidMessage):
            await asyncio.to_thread(im.send_message, 2, [1], {"text": "\ud800"})  # a lone surrogate
        with pytest.raises(InvalidChan):
            await im.ajoin_chan(1, "bad chan")
        with pytest.raises(ClientOffline):
            await im.ajoin_chan(99, "room")
        await no_frame(alice)


async def test_prev_connect_server_urls(settings, rf):
    with pytest.raises(NoConnectBase, match=r"pass base=request"):  # was NoServerAvailable, a 503: "try later"
        await im.aprev_connect_server(1)
    request = rf.get("/orders/", HTTP_HOST="shop.example.com:8443", secure=True)
    assert (await im.aprev_connect_server(1, base=request)).startswith("wss://shop.example.com:8443/ws?token=")
    url = await im.aprev_connect_server(1, base="wss://chat.example.com/")
    assert url.startswith("wss://chat.example.com/ws?token=") and len(url.split("=", 1)[1]) >= 22
    settings.FREEIM = {"SERVERS": ["wss://im.example.com:8443"], "PATH": "/im/ws"}
    assert (await im.aprev_connect_server(1)).startswith("wss://im.example.com:8443/im/ws?token=")
    settings.FREEIM = {"SERVERS": ["127.0.0.1:6001"]}
    assert im.prev_connect_server("alice", "ios").startswith("ws://127.0.0.1:6001/ws?token=")


async def test_get_client_nodes_counts_connections_per_node_of_online_clients():
    async with connected(application, 1), connected(application, 1), connected(application, "bot"):
        assert await im.aget_client_nodes([1, "bot", 2]) == {1: {"local": 2}, "bot": {"local": 1}}
        assert im.get_client_nodes("1") == {1: {"local": 2}}


class RecordingHistory:
    """A history that remembers what it was handed (``FREEIM["HISTORY"]`` names a class)."""

    kept: list = []

    def keep_messages(self, messages):
        self.kept.extend(("private", m.message_id, m.sender, m.receivers, m.message) for m in messages)

    def keep_chan_message(self, message):
        self.kept.append(("chan", message.message_id, message.sender, message.chan, message.message))

    def mark_read(self, reader, message_ids):
        self.kept.append(("read", reader, message_ids))

    def forget_chan(self, chan, history_to=None):
        self.kept.append(("forget", chan, history_to))


async def test_the_history_gets_each_message_and_read_from_both_twins(settings):
    settings.FREEIM = {"HISTORY": "tests.test_im.RecordingHistory"}
    RecordingHistory.kept.clear()
    async with connected(application, 1) as alice:
        await im.ajoin_chan(1, "room")
        first = await im.asend_chan_message("2", "room", {"n": 1})
        second = await asyncio.to_thread(im.send_chan_message, "bot", "room", {"n": 2})
        assert [(await alice.receive_frame())["id"] for _ in range(2)] == [first, second]
        with pytest.raises(InvalidMessage):  # refused: neither sent nor kept
            await im.asend_chan_message(1, "room", "x" * 70_000)
        to_alice = await im.asend_message("2", ["1", 3], "hi")
        to_bob = await asyncio.to_thread(im.send_message, 1, 2, "yo")
        await im.amark_read(1, [to_alice])
        await asyncio.to_thread(im.mark_read, "2", [to_bob, "unknown"])
        await im.aforget_chan("room", history_to="hall")
        await asyncio.to_thread(im.forget_chan, "hall")
    assert RecordingHistory.kept == [
        ("chan", first, 2, "room", {"n": 1}), ("chan", second, "bot", "room", {"n": 2}),
        ("private", to_alice, 2, [1, 3], "hi"), ("private", to_bob, 1, [2], "yo"),
        ("read", 1, [to_alice]), ("read", 2, [to_bob, "unknown"]), ("forget", "room", "hall"), ("forget", "hall", None)]


async def test_a_socket_past_max_connections_per_client_is_closed_with_4006(settings):
    settings.FREEIM = {"MAX_CONNECTIONS_PER_CLIENT": 2}
    async with connected(application, 1), connected(application, 1):
        extra = await FreeIMCommunicator.open(application, 1)  # accepted, to be told why it is closed
        assert await extra.receive_close() == 4006
        await extra.disconnect()
        assert await im.aget_client_nodes([1]) == {1: {"local": 2}}
    assert await im.ahas_online(1) is False


async def test_joins_past_max_chans_per_client_are_refused_whole(settings):
    settings.FREEIM = {"MAX_CHANS_PER_CLIENT": 3}
    async with connected(application, 1):
        await im.ajoin_chan(1, "a", "b")
        with pytest.raises(TooManyChans):
            await im.ajoin_chan(1, "c", "d")
        assert await im.aget_chan_list_by_client_id(1) == ["a", "b"]


async def test_auto_join_past_max_chans_per_client_joins_the_first_ones(settings):
    settings.FREEIM = {"MAX_CHANS_PER_CLIENT": 3}

    def many(client_id):
        return [f"team-{n}" for n in range(10)]

    autojoin.register(many)
    try:
        async with connected(application, 1):
            assert await im.aget_chan_list_by_client_id(1) == ["team-0", "team-1", "team-2"]
    finally:
        autojoin.unregister(many)



async def test_a_join_and_a_leave_whose_notices_cross_leave_the_node_as_the_store_says():
    """Two callers: A joins eve to a chan, B makes her leave it. A's store change came first, but its
    notice to the node came last: the node kept eve in the chan the store says she left, and she got
    its messages (found by an outside attack, on a cluster)."""
    async with connected(application, "eve") as eve, connected(application, "bob"):
        await im.ajoin_chan("bob", "room")
        backend = get_backend()
        held = HeldTransport()
        await operations.join_chan(Backend(backend.store, backend.nodes, held), "eve", "room")  # A: the store
        # says eve joined; its notice is not sent yet
        await im.aleave_chan("eve", "room")  # B: the store says she left, and the node hears so
        await backend.transport.publish(held.batches)  # A's notice arrives last
        assert await eve.receive_frame() == {"type": "left", "chan": "room"}  # the node put her right
        await im.asend_chan_message("bob", "room", "members only")
        await no_frame(eve)
        assert await im.aget_chan_client_list("room") == ["bob"]


async def test_a_send_retried_with_its_key_is_the_same_message_at_the_same_position():
    async with connected(application, 2) as bob:
        first = await im.asend_message(1, 2, "once", key="k1")
        again = await asyncio.to_thread(im.send_message, 1, [2], "once", key="k1")
        other = await im.asend_message(3, 2, "once", key="k1")  # another sender's key
        frames = [await bob.receive_frame() for _ in range(3)]
        # Under a key used before, another message, or the same to others, is another message: never a second
        # content for one id (the inbox would keep the first, the live frame carry the second).
        changed = await im.asend_message(1, 2, "changed", key="k1")
        elsewhere = await im.asend_message(1, [2, 4], "once", key="k1")
        with_receipt = await im.asend_message(1, 2, "once", key="k1", receipt=True)
        assert [(await bob.receive_frame())["data"] for _ in range(3)] == ["changed", "once", "once"]
        assert len({first, changed, elsewhere, with_receipt}) == 4
        assert await im.asend_message(1, [4, 2], "once", key="k1") == elsewhere  # the same receivers
        chan = [await im.asend_chan_message(1, name, "hi", key="k1") for name in ("a", "b", "a")]
        assert chan[0] == chan[2] != chan[1]
    assert first == again != other
    assert [(f["id"], f["pos"]) for f in frames[:2]] == [(first, frames[0]["pos"])] * 2  # one message: pos dedups
    assert frames[2]["pos"] != frames[0]["pos"]
    with pytest.raises(InvalidMessage):
        await im.asend_message(1, 2, "x", key="")
    with pytest.raises(InvalidMessage):
        await im.asend_message(1, 2, "x", key="k" * 65)


class RefusingHistory(RecordingHistory):
    """A database that refuses what it is given (PostgreSQL's jsonb and a NUL), or is down."""

    error = DataError("unsupported Unicode escape sequence")

    def keep_messages(self, messages):
        raise self.error

    keep_chan_message = keep_messages


@pytest.mark.parametrize(("error", "raised"), [(DataError("no NUL in jsonb"), InvalidMessage),
                                               (OperationalError("connection refused"), HistoryUnavailable)])
async def test_a_message_the_history_cannot_keep_is_not_sent(settings, error, raised):
    """It was sent first: the receiver had it, the history not, and the caller got a 500 it retried for ever."""
    settings.FREEIM = {"HISTORY": "tests.test_im.RefusingHistory"}
    RefusingHistory.error = error
    async with connected(application, 2) as bob:
        await im.ajoin_chan(2, "room")
        with pytest.raises(raised):
            await im.asend_message(1, 2, "nul \u0000 here")
        with pytest.raises(raised):
            await asyncio.to_thread(im.send_chan_message, 1, "room", "\u0000")
        assert await bob.receive_nothing()


async def test_a_read_the_history_cannot_note_is_a_clear_error_after_its_receipts(settings):
    settings.FREEIM = {"HISTORY": "tests.test_im.UnreachableHistory"}
    with pytest.raises(HistoryUnavailable):
        await im.amark_read(1, ["m1"])
    with pytest.raises(HistoryUnavailable):
        await asyncio.to_thread(im.forget_chan, "room")


class UnreachableHistory(RecordingHistory):
    def mark_read(self, reader, message_ids):
        raise OperationalError("connection refused")

    def forget_chan(self, chan, history_to=None):
        raise OperationalError("connection refused")
