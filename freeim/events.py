"""Online/offline events as Django signals (:mod:`freeim.signals`), sent off the connect path:
:func:`dispatch` for one event (the embedded node's :mod:`freeim.node.local_events`), :func:`consume`
for a ``freeim_events`` worker reading the cluster's events stream (at least once)."""

from __future__ import annotations

import logging
import threading

from .backends import run_blocking
from .backends.contract import EventStream
from .exceptions import StoreUnavailable
from .ids import ClientId, client_id
from .signals import client_offline, client_online

logger = logging.getLogger("freeim.events")
SIGNALS = {"online": client_online, "offline": client_offline}


async def dispatch(kind: str, client_id: ClientId, meta: str, server: str) -> None:
    """Send the signal of one event; a failing receiver never stops the others (it is logged once, on
    ``freeim.signals``: :class:`~freeim.signals.RobustSignal`)."""
    await SIGNALS[kind].asend_robust(sender=None, client_id=client_id, meta=meta, server=server)


def consume(events: EventStream, group: str, consumer: str, claim_idle: float, stop: threading.Event) -> None:
    """Handle the events stream as one worker of ``group`` until ``stop`` is set.

    Each event reaches one worker of the group; it is acked after its receivers
    ran, so one that a worker took and died with is claimed by another after
    ``claim_idle`` seconds. The workers share the events out by client, so each
    client's are handled by one worker at a time, in order; a worker that stops
    gives its share up at once.
    """
    while not stop.is_set():
        try:
            for entry_id, fields in run_blocking(events.read(group, consumer, int(claim_idle * 1000), 1000)):
                handle(fields)
                run_blocking(events.ack(group, [entry_id]))
        except StoreUnavailable as error:  # an event handled but not acked is handled again: at least once
            logger.warning("freeim events: %s; retrying", error)
            stop.wait(1)
    try:
        run_blocking(events.leave(group, consumer))
    except StoreUnavailable as error:  # its share goes to the others once its leases expire
        logger.warning("freeim events: %s; leaving without giving the partitions up", error)


def handle(fields: dict[str, str]) -> None:
    """Send the signal of one event read from Redis; failing receivers are logged (as by :func:`dispatch`)."""
    kind, client = fields.get("kind", ""), fields.get("client", "")
    if kind not in SIGNALS or not client:
        logger.error("freeim events: malformed event %r skipped", fields)
        return
    SIGNALS[kind].send_robust(sender=None, client_id=client_id(client), meta=fields.get("meta", ""),
                              server=fields.get("server", ""))
