"""How kept messages look in the history API: as the frames that carried them, with when they were sent."""

from __future__ import annotations

from rest_framework import serializers

from freeim import ids

from .models import ChanMessage, Copy


class PrivateMessageSerializer(serializers.ModelSerializer[Copy]):
    """A participant's copy as ``{id, from, to, data, sent_at, read_at}``; ``id`` as the message frame carried it."""

    id = serializers.CharField(source="message_id")
    locals()["from"] = serializers.SerializerMethodField(method_name="get_sender")  # a Python keyword
    to = serializers.SerializerMethodField()
    data = serializers.JSONField(source="message.data")  # type: ignore[assignment]  # a field (see rest.serializers)
    sent_at = serializers.DateTimeField(source="message.sent_at")

    class Meta:
        model = Copy
        fields = ["id", "from", "to", "data", "sent_at", "read_at"]

    def get_sender(self, copy: Copy) -> ids.ClientId:
        return copy.sender

    def get_to(self, copy: Copy) -> ids.ClientId:
        return copy.receiver


class ChanMessageSerializer(serializers.ModelSerializer[ChanMessage]):
    """``{id, chan, from, data, sent_at}``; ``id`` as the chan frame carried it."""

    id = serializers.CharField(source="message_id")
    locals()["from"] = serializers.SerializerMethodField(method_name="get_sender")

    class Meta:
        model = ChanMessage
        fields = ["id", "chan", "from", "data", "sent_at"]

    def get_sender(self, message: ChanMessage) -> ids.ClientId:
        return ids.client_id(message.sender)
