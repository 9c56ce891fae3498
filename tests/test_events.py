"""freeim.events: a freeim_events worker sends each event of the cluster's stream as a signal, at least once."""

import threading
import uuid

from freeim import signals
from freeim.backends.redis import RedisBackend
from freeim.events import consume, handle
from tests.blocking import blocking


def test_a_worker_sends_each_event_of_the_stream_as_a_signal(redis_server):
    backend = RedisBackend(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1)
    sync = blocking(backend)
    seen, stop = [], threading.Event()

    def online(client_id, meta, server, **kwargs):
        seen.append(("online", client_id, meta, server))

    def offline(client_id, meta, server, **kwargs):
        seen.append(("offline", client_id, meta, server))
        stop.set()  # the last event of the test

    signals.client_online.connect(online)
    signals.client_offline.connect(offline)
    try:
        sync.store.add_connection("a", 42, "a1", "web")
        sync.store.remove_connection("a", 42, "a1", "web")
        worker = threading.Thread(target=consume, args=(backend.blocking().events, "g", "w", 30, stop))
        worker.start()
        worker.join(10)
        assert not worker.is_alive()
        assert seen == [("online", 42, "web", "a"), ("offline", 42, "web", "a")]
        assert sync.events.read("g", "w2", 60_000, 10) == []  # acked: no worker gets them again
    finally:
        signals.client_online.disconnect(online)
        signals.client_offline.disconnect(offline)
        backend.flush()


def test_a_malformed_event_is_logged_and_skipped(caplog):
    seen = []

    def online(**kwargs):
        seen.append(kwargs)

    signals.client_online.connect(online)
    try:
        handle({"kind": "online"})  # no client
        handle({"kind": "sideways", "client": "1"})
    finally:
        signals.client_online.disconnect(online)
    assert seen == [] and caplog.text.count("malformed event") == 2
