"""Signals freeim sends. Receivers take ``**kwargs``; ``sender`` is always None.

In the embedded mode the presence signals are sent in the node's process, in order,
once per client going online (its first connection) and offline (its last one).
Async receivers are awaited; sync receivers run in Django's sync thread, so
keep them short or hand the work to a task queue.
"""

from django.dispatch import Signal

#: A client's first connection opened. kwargs: ``client_id``, ``meta``, ``server``.
client_online = Signal()

#: A client's last connection closed (or its node went away). kwargs: ``client_id``, ``meta``, ``server``.
client_offline = Signal()

#: A private message was stored for a receiver that had no socket: it waits in its inbox (push a
#: notification, persist it). Sent by the process that sent the message, right after, once per such
#: receiver. kwargs: ``client_id`` (the receiver), ``from_id``, ``message_id``, ``message``, ``position``.
message_stored = Signal()

#: A message was handed to the nodes, by the process that sent it (your code, the REST API, the admin), once
#: per message. kwargs: ``message``: a :class:`~freeim.messaging.operations.SentMessage` (``message_id``,
#: ``sender``, ``receivers``, ``message``), :class:`~freeim.messaging.operations.SentChanMessage`
#: (``message_id``, ``sender``, ``chan``, ``message``) or :class:`~freeim.messaging.operations.SentBroadcast`
#: (``message``). :func:`freeim.testing.captured_sends` collects them for tests, as ``mail.outbox`` does.
message_sent = Signal()
