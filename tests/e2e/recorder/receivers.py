"""Receivers that RPUSH each signal, as JSON, to the Redis list ``$FREEIM_TEST_RECORD_KEY``.

With ``$FREEIM_TEST_CRASH_MARKER`` set, the first worker to see :data:`CRASH_CLIENT`
creates that file and dies on the spot, before recording or acking: the event stays
pending for another worker to claim. The file makes it crash only once.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import redis

RECORD_KEY = "FREEIM_TEST_RECORD_KEY"
CRASH_MARKER = "FREEIM_TEST_CRASH_MARKER"
CRASH_CLIENT = "crash-once"


@functools.cache
def store() -> redis.Redis:
    return redis.Redis.from_url(os.environ["FREEIM_REDIS_URL"])


def record(kind: str, client_id: Any, meta: str, server: str) -> None:
    key = os.environ.get(RECORD_KEY)
    if not key:
        return
    crash_once(client_id)
    entry = {"kind": kind, "client_id": client_id, "meta": meta, "server": server, "pid": os.getpid()}
    store().rpush(key, json.dumps(entry))


def crash_once(client_id: Any) -> None:
    marker = os.environ.get(CRASH_MARKER)
    if client_id != CRASH_CLIENT or not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)  # no cleanup, no ack: as a worker killed mid-event


def record_online(client_id: Any, meta: str, server: str, **kwargs: Any) -> None:
    record("online", client_id, meta, server)


def record_offline(client_id: Any, meta: str, server: str, **kwargs: Any) -> None:
    record("offline", client_id, meta, server)
