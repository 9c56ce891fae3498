"""The cluster's transport: one inbox stream per node (:class:`~freeim.backends.contract.Transport`).

Each node reads its own inbox (``XREAD BLOCK`` from the last id it saw, on a connection of its own),
and a sender appends one entry per node per call, all nodes in one pipeline (through
:mod:`.client`); the append trims the oldest entries past ``TRANSPORT_MAX_BYTES``, and each node
trims what is older than a minute from its own inbox on its upkeep beat. A stream keeps what arrives
while the node's reader reconnects or its loop stalls, where PUBLISH would drop it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import OrderedDict
from typing import cast

from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from ... import measures
from ...conf import conf
from ...messaging.payloads import Payload
from ..contract import Deliver
from .client import REDIS_ERRORS, Performer, performed
from .keys import Keys
from .pools import MASTER_CHECK, connect
from .steps import Lua, Pipe, Steps, one

logger = logging.getLogger("freeim.redis")
#: A node's inbox keeps the last minute: a node stalled or reconnecting for less loses nothing.
INBOX_RETENTION_MS = 60_000
#: Entries read at once.
READ_COUNT = 500
#: How long one read waits for entries (ms). Each read lets the reader's pool ask the sentinels where the master is
#: (:data:`.pools.MASTER_CHECK`), so after a failover a reader blocked on the old master moves within about this
#: (reads of 5 s left a node delivering nothing for 5 s).
READ_BLOCK_MS = int(MASTER_CHECK * 1000)
#: What ``XREAD`` answers (with ``decode_responses``): per stream, its entries' ids and fields.
StreamsReply = list[tuple[str, list[tuple[str, dict[str, str]]]]]
#: Batch ids a node remembers, to skip a batch that a retried append wrote twice.
SEEN_BATCHES = 10_000


class RedisTransport:
    """Node inboxes in Redis streams."""

    def __init__(self, url: str, keys: Keys, performer: Performer) -> None:
        self.url = url
        self.keys = keys
        self.performer = performer

    @performed
    def publish(self, batches: dict[str, list[Payload]]) -> Steps[None]:
        if batches:
            limit = conf.TRANSPORT_MAX_BYTES
            yield Pipe(tuple(Lua("append", self.keys.inbox(node), (os.urandom(8).hex(), json.dumps(payloads), limit))
                             for node, payloads in batches.items()), durable=True)

    @performed
    def trim_inbox(self, node: str) -> Steps[None]:
        """Drop what ``node``'s inbox holds past its age (a node that nobody sends to trims its own)."""
        yield Lua("trim_inbox", self.keys.inbox(node), (conf.TRANSPORT_MAX_BYTES,
                                                        int(time.time() * 1000) - INBOX_RETENTION_MS))

    @performed
    def inbox_tail(self, node: str) -> Steps[str]:
        newest = yield one("xrevrange", self.keys.node(node, "inbox"), "+", "-", 1)
        return str(newest[0][0]) if newest else "0-0"

    async def receive(self, node: str, deliver: Deliver, after: str) -> None:
        """Read ``node``'s inbox from the entry id ``after``, across reconnects, until cancelled.

        A batch whose append was retried after Redis ran it is in the stream twice: delivered once.
        """
        inbox = self.keys.node(node, "inbox")
        # A connection of its own. A read blocks well within the pools' socket timeout, so a master that went
        # silent (its host down) fails the read in seconds, where no timeout hung it until TCP gave up; and
        # this loop is the retry, since redis-py retries a command on the address it had (redis/redis-py#3874):
        # a read on a silent master failed only after three socket timeouts.
        reader = connect(self.url, asynchronous=True, max_connections=1, retry=AsyncRetry(NoBackoff(), 0))
        seen: OrderedDict[str, None] = OrderedDict()
        last_id = after
        try:
            while not _cancelled():
                try:
                    found = cast(StreamsReply, await reader.xread({inbox: last_id}, count=READ_COUNT,
                                                                      block=READ_BLOCK_MS))
                    for _stream, entries in found:
                        for entry_id, fields in entries:
                            last_id = entry_id
                            if _first_time(seen, fields.get("b", entry_id)):  # an entry id is "<ms>-<seq>"
                                deliver(json.loads(fields["p"]), int(entry_id.partition("-")[0]) / 1000)
                except REDIS_ERRORS as error:  # counted as the steps' are, which go through Connections.issue
                    measures.REDIS_ERRORS.inc("xread", type(error).__name__)
                    logger.warning("freeim node %s: inbox read failed (%s); retrying", node, error)
                    await asyncio.sleep(0.5)
            raise asyncio.CancelledError
        finally:
            await reader.aclose()


def _cancelled() -> bool:
    """Whether the running task was cancelled and runs on all the same. A read cancelled as a master that stopped
    answering timed out can come back from redis-py as its timeout error (seen in about one failover in six), and
    the reader, which retries those, then read for ever: its node's stop, or the event loop's close, hung on it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _first_time(seen: OrderedDict[str, None], batch: str) -> bool:
    """Whether ``batch`` is new; remembers the last :data:`SEEN_BATCHES` ids."""
    if batch in seen:
        return False
    seen[batch] = None
    if len(seen) > SEEN_BATCHES:
        seen.popitem(last=False)
    return True
