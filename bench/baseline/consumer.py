"""The baseline consumer, as the Channels tutorial would have it."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer

from bench import loopprobe

EVERYONE = "room.all"


class ImConsumer(AsyncWebsocketConsumer):
    """Joins ``user.<id>``, ``room.all`` and any ``?chans=a,b`` (as ``chan.<name>``), then relays ``im.message``."""

    async def connect(self) -> None:
        loopprobe.ensure_started()
        user = self.scope["url_route"]["kwargs"]["user_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        chans = [c for c in query.get("chans", [""])[0].split(",") if c]
        self.joined = [f"user.{user}", EVERYONE, *(f"chan.{c}" for c in chans)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def im_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])
