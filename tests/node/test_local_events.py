"""freeim.node.local_events: the embedded mode's signals, in order, one at a time, off the connect path."""

import asyncio

from freeim import signals
from freeim.node.local_events import LocalEvents


async def test_events_are_sent_in_order_and_drain_waits_for_them():
    seen = []

    async def slow_online(client_id, **kwargs):
        await asyncio.sleep(0.01)  # a receiver that awaits: the next event still waits its turn
        seen.append(("online", client_id))

    def offline(client_id, server, **kwargs):
        seen.append(("offline", client_id, server))

    signals.client_online.connect(slow_online)
    signals.client_offline.connect(offline)
    events = LocalEvents()
    events.start()
    try:
        events.put("online", 1, "", "local")
        events.put("offline", 1, "", "local")
        events.put("online", 2, "", "local")
        assert seen == []  # put never waits for receivers
        await events.drain(timeout=5)
    finally:
        signals.client_online.disconnect(slow_online)
        signals.client_offline.disconnect(offline)
    assert seen == [("online", 1), ("offline", 1, "local"), ("online", 2)]


async def test_drain_gives_up_after_its_timeout(caplog):
    stuck = asyncio.Event()

    async def never_returns(**kwargs):
        await stuck.wait()

    signals.client_online.connect(never_returns)
    events = LocalEvents()
    events.start()
    try:
        events.put("online", 1, "", "local")
        events.put("online", 2, "", "local")
        await events.drain(timeout=0.05)
    finally:
        signals.client_online.disconnect(never_returns)
    assert "events not dispatched at shutdown" in caplog.text
