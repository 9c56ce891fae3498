"""Signals of freeim.groups. Receivers take ``**kwargs``; ``sender`` is
:class:`~freeim.groups.models.Membership`.

``group_member_added`` and ``group_member_removed`` are sent after the transaction that made the
change commits (never for a rolled-back change), for changes made anywhere through the ORM: the
admin, the REST API, your code. ``bulk_create`` and ``QuerySet.update`` send no model signals, so
neither these. By the time ``group_member_added`` is sent an online member is already in the group's
chan, so a receiver may greet it there.
"""

from django.dispatch import Signal

#: A client became a member. kwargs: ``membership``, ``group``, ``client_id`` (canonical).
group_member_added = Signal()

#: A client stopped being a member (removed, its user or its group deleted). kwargs: as above.
group_member_removed = Signal()
