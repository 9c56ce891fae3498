"""freeim.messaging.operations: what a connect ticket names, and where a message is routed."""

import pytest

from freeim import im
from freeim.backends import Backend, get_backend
from freeim.exceptions import InvalidMessage
from freeim.messaging import operations


def test_a_ticket_never_names_the_node_the_terminal_asks_to_avoid_while_there_is_another(settings):
    settings.FREEIM = {"SERVERS": ["a:1", "b:2", "c:3"]}
    for client in range(30):
        _url, usual = im.connect_ticket(client)
        url, node = im.connect_ticket(client, avoid=usual)
        assert node != usual and url.startswith(f"ws://{node}/ws?token=")
    settings.FREEIM = {"SERVERS": ["a:1"]}
    assert im.connect_ticket(1, avoid="a:1")[1] == "a:1"  # the only one: better than none


def test_a_ticket_takes_a_position_or_the_start_and_nothing_else(settings):
    settings.FREEIM = {"SERVERS": ["a:1"]}
    im.connect_ticket(1, since="*")
    im.connect_ticket(1, since="9e718890.17")
    with pytest.raises(InvalidMessage):
        im.connect_ticket(1, since="17")


class CountingStore:
    """The memory store, counting the calls that store messages (and find where their clients are)."""

    def __init__(self, store):
        self.store, self.calls = store, 0

    def __getattr__(self, name):
        return getattr(self.store, name)

    async def store_messages(self, letters, senders):
        self.calls += 1
        return await self.store.store_messages(letters, senders)


async def test_read_receipts_to_many_senders_are_stored_and_located_in_one_call():
    real = get_backend()
    sent = [await im.asend_message(sender, ["alice"], "hi", receipt=True) for sender in ("bob", "carol", "dave")]
    counting = CountingStore(real.store)
    assert await operations.mark_read(Backend(counting, real.nodes, real.transport), "alice", sent) == 3
    assert counting.calls == 1  # it was one lookup per sender once
