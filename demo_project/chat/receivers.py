"""Presence notices: tell every chat page when a chat user comes online or goes offline."""

from django.contrib.auth import get_user_model
from django.dispatch import receiver

from freeim import im
from freeim.signals import client_offline, client_online

#: The connect meta of the chat page. Only its terminals are announced, so other clients
#: of the same project (scripts, tests, an app) come and go without a notice.
CHAT_META = "chat"


async def announce(event: str, client_id: object, meta: str) -> None:
    if meta != CHAT_META:
        return
    name = await get_user_model().objects.filter(pk=client_id).values_list("username", flat=True).afirst()
    await im.asend_broadcast_message({"event": event, "id": client_id, "name": name})


@receiver(client_online, dispatch_uid="chat.announce_online")
async def announce_online(client_id: object, meta: str, **kwargs: object) -> None:
    await announce("online", client_id, meta)


@receiver(client_offline, dispatch_uid="chat.announce_offline")
async def announce_offline(client_id: object, meta: str, **kwargs: object) -> None:
    await announce("offline", client_id, meta)
