"""Signals freeim sends. Receivers take ``**kwargs``; ``sender`` is always None.

In the embedded mode the presence signals are sent in the node's process, in order,
once per client going online (its first connection) and offline (its last one).
Async receivers are awaited; sync receivers run in Django's sync thread, so
keep them short or hand the work to a task queue.

Every one is sent with ``send_robust`` (or ``asend_robust``): a receiver that raises is logged
once, with its traceback, on the ``freeim.signals`` logger, and the receivers after it still run.
"""

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("freeim.signals")


class RobustSignal(Signal):
    """A signal whose failing receivers are logged once, on ``freeim.signals``.

    Django logs them on ``django.dispatch``, which its default logging config both prints (with
    ``DEBUG`` on) and passes on to the root logger: under daphne, which gives the root logger a
    handler, each failure came out twice; in a management command with ``DEBUG`` off, not at all.
    ``freeim.*`` loggers have no handler of their own, so a failure is printed once either way.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def has_listeners(self, sender: Any = None) -> bool:
        """Django's answer, after a look at the receivers list: Django's own weighs each receiver (a few µs,
        asked twice per message sent, which no receiver listens to in most processes)."""
        return bool(self.receivers) and super().has_listeners(sender)

    def _log_robust_failure(self, receiver: Any, err: Exception) -> None:  # Django's hook (5.0+) for these logs
        logger.error("freeim: receiver %s of %s raised %r", getattr(receiver, "__qualname__", repr(receiver)),
                     self.name, err, exc_info=err)


#: A client's first connection opened. kwargs: ``client_id``, ``meta``, ``server``.
client_online = RobustSignal("client_online")

#: A client's last connection closed (or its node went away). kwargs: ``client_id``, ``meta``, ``server``.
client_offline = RobustSignal("client_offline")

#: A private message was stored for a receiver that had no socket: it waits in its inbox (push a
#: notification, persist it). Sent by the process that sent the message, right after, once per such
#: receiver. kwargs: ``client_id`` (the receiver), ``from_id``, ``message_id``, ``message``, ``position``.
message_stored = RobustSignal("message_stored")

#: A message was handed to the nodes, by the process that sent it (your code, the REST API, the admin), once
#: per message. kwargs: ``message``: a :class:`~freeim.messaging.operations.SentMessage` (``message_id``,
#: ``sender``, ``receivers``, ``message``), :class:`~freeim.messaging.operations.SentChanMessage`
#: (``message_id``, ``sender``, ``chan``, ``message``) or :class:`~freeim.messaging.operations.SentBroadcast`
#: (``message``). :func:`freeim.testing.captured_sends` collects them for tests, as ``mail.outbox`` does.
message_sent = RobustSignal("message_sent")
