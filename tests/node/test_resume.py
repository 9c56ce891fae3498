"""A terminal that comes back with the last position it holds gets what it missed, once, in order, then live."""

from freeim import autojoin, im, signals
from freeim.backends import Backend, get_backend
from freeim.messaging import operations
from freeim.node.connection import Connection, Frame
from freeim.testing import connected
from tests.asgi import application
from tests.frames import unpositioned
from tests.transports import HeldTransport


async def test_messages_to_an_offline_client_wait_in_its_inbox_and_come_in_order_on_connect():
    sent = [await im.asend_message("bob", ["alice"], n) for n in range(3)]
    async with connected(application, "alice", since="*") as alice:
        frames = [await alice.receive_frame() for _ in range(3)]
        assert [(f["id"], f["data"]) for f in frames] == list(zip(sent, range(3), strict=True))
        live = await im.asend_message("bob", ["alice"], "live")
        assert (await alice.receive_frame())["id"] == live
        assert await alice.receive_nothing()
    async with connected(application, "alice", since=frames[1]["pos"]) as again:  # a reload that had two
        assert [(await again.receive_frame())["data"] for _ in range(2)] == [2, "live"]
        assert await again.receive_nothing()


async def test_without_a_position_a_terminal_gets_live_messages_only():
    await im.asend_message("bob", ["alice"], "before")
    async with connected(application, "alice") as alice:
        await im.asend_message("bob", ["alice"], "after")
        assert (await alice.receive_frame())["data"] == "after"
        assert await alice.receive_nothing()


async def test_a_terminal_asking_from_what_the_inbox_no_longer_keeps_gets_a_gap_first(settings):
    settings.FREEIM = {"INBOX_MAX_MESSAGES": 2}
    async with connected(application, "alice", since="*") as alice:
        await im.asend_message("bob", ["alice"], 0)
        first = await alice.receive_frame()
    for n in range(1, 4):
        await im.asend_message("bob", ["alice"], n)  # the inbox keeps 2 and 3
    async with connected(application, "alice", since=first["pos"]) as alice:
        assert await alice.receive_frame() == {"type": "gap", "since": first["pos"]}
        assert [(await alice.receive_frame())["data"] for _ in range(2)] == [2, 3]


class Consumer:
    """What a connection needs of its consumer: no daphne socket behind it, so frames go through ``send``."""

    base_send = None

    def __init__(self):
        self.sent = []

    async def send(self, text_data):
        self.sent.append(text_data)


async def test_what_arrives_while_the_inbox_is_read_follows_it_once():
    """The catch-up read and the live stream overlap: a message may come both ways; it is queued once, after
    what the terminal missed, in order."""
    consumer = Consumer()
    connection = Connection(consumer, "alice", "", since="*")
    frames = {n: Frame(f'{{"n":{n}}}') for n in range(1, 5)}
    connection.hold()
    connection.enqueue_at(frames[2], ("e", 2), 10_000)  # live, while the inbox is read (it holds 1 and 2)
    connection.enqueue(Frame('{"type":"broadcast"}'), 10_000)
    connection.enqueue_at(frames[3], ("e", 3), 10_000)
    assert not connection.has_pending
    assert connection.catch_up([frames[1], frames[2]], {"": ("e", 2)}, 10_000)
    connection.enqueue_at(frames[2], ("e", 2), 10_000)  # 2 again, live, late: the catch-up had it
    connection.enqueue_at(frames[4], ("e", 4), 10_000)
    connection.accepted = True
    assert connection.write_pending() is False  # no daphne socket: through send_pending
    await connection.send_pending()
    assert consumer.sent == ['{"n":1}', '{"n":2}', '{"type":"broadcast"}', '{"n":3}', '{"n":4}']


async def test_a_sender_hears_delivered_when_its_offline_receiver_catches_up():
    async with connected(application, "bob") as bob:
        sent = await im.asend_message("bob", ["alice"], "are you there?", receipt=True)
        offline = await bob.receive_frame()
        assert unpositioned(offline) == {"type": "receipt", "id": sent, "to": "alice", "status": "offline"}
        async with connected(application, "alice", since="*") as alice:
            assert (await alice.receive_frame())["id"] == sent
            delivered = await bob.receive_frame()
            assert unpositioned(delivered) == {"type": "receipt", "id": sent, "to": "alice", "status": "delivered"}
    # Receipts wait in the sender's inbox, as messages do: a device of bob's that comes back gets them.
    async with connected(application, "bob", since="*") as later:
        assert [await later.receive_frame() for _ in range(2)] == [offline, delivered]


async def test_a_receipt_made_while_its_sender_is_away_reaches_it_when_it_comes_back():
    async with connected(application, "bob") as bob:
        sent = await im.asend_message("bob", ["alice"], "read me", receipt=True)
        offline = await bob.receive_frame()
    await im.amark_read("alice", [sent])  # bob has no socket now
    async with connected(application, "bob", since=offline["pos"]) as bob:
        assert unpositioned(await bob.receive_frame()) == {"type": "receipt", "id": sent, "to": "alice",
                                                            "status": "read"}
        assert await bob.receive_nothing()


async def test_a_receipt_owed_twice_is_kept_and_sent_at_one_position():
    async with connected(application, "bob") as bob:
        sent = await im.asend_message("bob", ["alice"], "read me", receipt=True)
        await bob.receive_frame()
        await im.amark_read("alice", [sent])
        await im.amark_read("alice", [sent])  # a second device read it too
        first, second = await bob.receive_frame(), await bob.receive_frame()
    assert first == second and first["status"] == "read"  # the same position: a terminal shows it once


async def test_a_receiver_marking_messages_read_sends_read_receipts_to_the_senders_that_asked():
    async with connected(application, "bob") as bob, connected(application, "carol") as carol:
        asked = await im.asend_message("bob", ["alice"], "did you read this?", receipt=True)
        assert (await bob.receive_frame())["status"] == "offline"
        silent = await im.asend_message("carol", ["alice"], "no receipt wanted")
        assert await im.amark_read("alice", [asked, silent, "unknown-id"]) == 1
        assert unpositioned(await bob.receive_frame()) == {"type": "receipt", "id": asked, "to": "alice",
                                                           "status": "read"}
        assert await carol.receive_nothing()


async def test_a_message_for_an_absent_receiver_sends_message_stored_once_per_such_receiver():
    stored = []

    async def on_stored(**kwargs):
        stored.append(kwargs)

    signals.message_stored.connect(on_stored)
    try:
        async with connected(application, "bob"):
            sent = await im.asend_message("carol", ["alice", "bob"], {"text": "hi"})
    finally:
        signals.message_stored.disconnect(on_stored)
    [only] = stored  # bob was connected: nothing waits for him
    assert {key: only[key] for key in ("client_id", "from_id", "message_id", "message")} == {
        "client_id": "alice", "from_id": "carol", "message_id": sent, "message": {"text": "hi"}}
    assert only["position"].endswith(".1") and only["sender"] is None


def test_the_sync_helper_sends_message_stored_too():
    stored = []

    def on_stored(client_id, **kwargs):
        stored.append(client_id)

    signals.message_stored.connect(on_stored)
    try:
        im.send_messages([("carol", ["alice"], 1), ("carol", ["dave", "alice"], 2)])
    finally:
        signals.message_stored.disconnect(on_stored)
    assert stored == ["alice", "dave", "alice"]


async def test_a_member_that_comes_back_gets_the_chan_messages_it_missed_in_its_auto_joined_chans():
    def team(client_id):
        return ["team"]

    autojoin.register(team)
    try:
        async with connected(application, "alice", chans_since={"team": "*"}) as alice:
            await im.asend_chan_message("boss", "team", 0)
            seen = await alice.receive_frame()
        for n in range(1, 3):
            await im.asend_chan_message("boss", "team", n)  # alice is away
        async with connected(application, "alice", chans_since={"team": seen["pos"], "other": "*"}) as alice:
            assert [(await alice.receive_frame())["data"] for _ in range(2)] == [1, 2]
            await im.asend_chan_message("boss", "team", 3)
            assert (await alice.receive_frame())["data"] == 3
            assert await alice.receive_nothing()  # nothing of "other": she is not in it
    finally:
        autojoin.unregister(team)


async def test_a_terminal_that_joins_its_plain_chans_as_it_connects_catches_up_on_them():
    """A plain chan is left with the client's last socket: a terminal that came back and joined it again
    got live messages only, and what was said meanwhile was lost to it."""
    async with connected(application, "alice") as alice:
        await im.ajoin_chan("alice", "lobby")
        await im.asend_chan_message("bob", "lobby", 0)
        seen = await alice.receive_frame()
    assert await im.aget_chan_list_by_client_id("alice") == []  # left with the last socket
    for n in range(1, 3):
        await im.asend_chan_message("bob", "lobby", n)
    async with connected(application, "alice", chans_since={"lobby": seen["pos"]}, join=["lobby"]) as alice:
        assert [(await alice.receive_frame())["data"] for _ in range(2)] == [1, 2]
        assert await im.aget_chan_list_by_client_id("alice") == ["lobby"]
        await im.asend_chan_message("bob", "lobby", 3)
        assert (await alice.receive_frame())["data"] == 3
        assert await alice.receive_nothing()


async def test_a_join_at_connect_takes_the_room_max_chans_per_client_leaves(settings):
    settings.FREEIM = {"MAX_CHANS_PER_CLIENT": 3}
    async with connected(application, "alice") as first:
        await im.ajoin_chan("alice", "a", "b")
        async with connected(application, "alice", join=["b", "c", "d"]):
            assert sorted(await im.aget_chan_list_by_client_id("alice")) == ["a", "b", "c"]
        await first.receive_nothing()


async def test_messages_whose_sends_race_each_arrive_whatever_their_order():
    """Two senders at once: the first stored (lower position) may reach the node after the second. It was
    dropped as seen: a node took the newest position written to a socket for everything it had had."""
    backend = get_backend()
    async with connected(application, "alice") as alice:
        held = HeldTransport()
        first = await operations.deliver_messages(Backend(backend.store, backend.nodes, held),
                                                  operations.prepare_messages([("bob", ["alice"], 1)]))
        second = await im.asend_message("carol", ["alice"], 2)  # stored after the first, delivered before it
        assert (await alice.receive_frame())["id"] == second
        await backend.transport.publish(held.batches)
        assert (await alice.receive_frame())["id"] == first.messages[0].message_id


async def test_a_catch_up_larger_than_the_backlog_sends_the_newest_that_fit_after_a_gap(settings):
    """A full inbox came back as more than a socket's backlog: the socket was closed as slow (4002), the
    terminal reconnected from the same position, and was closed again, for ever."""
    settings.FREEIM = {"MAX_BACKLOG_BYTES": 4000}
    for n in range(20):
        await im.asend_message("bob", ["alice"], {"n": n, "pad": "x" * 400})
    async with connected(application, "alice", since="*") as alice:
        assert await alice.receive_frame() == {"type": "gap", "since": "*"}
        got = []
        while (frame := await alice.receive_frame()) and frame["data"]["n"] != 19:
            got.append(frame["data"]["n"])
        assert got == list(range(19 - len(got), 19)) and got  # the newest that fit, in order, up to the last
        assert await alice.receive_nothing()


async def test_a_join_at_connect_joins_nothing_when_managed_chans_cannot_be_told(caplog):
    """The managed-chan test failing (the database down) broke the handshake; the socket opens, in no chan."""
    def broken(chans):
        raise RuntimeError("database down")

    autojoin.manage_many(broken)
    try:
        async with connected(application, "alice", join=["lobby"]):
            assert await im.aget_chan_list_by_client_id("alice") == []
    finally:
        autojoin.unmanage_many(broken)
    assert "could not tell which chans" in caplog.text
