"""Chan message history for groups: ``FREEIM = {"CHAN_MESSAGE_STORE": "freeim.groups.history.store"}``."""

from __future__ import annotations

from typing import Any

from django.db.models import JSONField, Value

from freeim.ids import ClientId

from .models import Group, GroupMessage


def store(sender: ClientId, chan: str, message: Any) -> None:
    """Keep a chan message sent to a group's chan; other chans' messages are not kept."""
    group_id = Group.objects.filter(slug=chan).values_list("pk", flat=True).first()
    if group_id is not None:
        # A bare None would be SQL NULL, which the column refuses; the message is JSON null.
        data = Value(None, JSONField()) if message is None else message
        GroupMessage.objects.create(group_id=group_id, sender=str(sender), data=data)
