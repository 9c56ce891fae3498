"""Chan message history for groups: ``FREEIM = {"CHAN_MESSAGE_STORE": "freeim.groups.history.store"}``."""

from __future__ import annotations

from typing import Any

from freeim.ids import ClientId

from .models import Group, GroupMessage


def store(sender: ClientId, chan: str, message: Any) -> None:
    """Keep a chan message sent to a group's chan; other chans' messages are not kept."""
    group_id = Group.objects.filter(slug=chan).values_list("pk", flat=True).first()
    if group_id is not None:
        GroupMessage.objects.create(group_id=group_id, sender=str(sender), data=message)
