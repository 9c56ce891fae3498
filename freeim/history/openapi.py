"""The history REST API described for drf-spectacular (see :mod:`freeim.openapi`); imported by the app's
``ready()`` when drf-spectacular is installed."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction
from rest_framework import serializers

from freeim.openapi import BAD_CHAN, BAD_CLIENT_ID, CLIENT_ID, FORBIDDEN, STORE, chan_parameter, describe, responses
from freeim.rest.serializers import ClientIdField

from . import views
from .serializers import ChanMessageSerializer, PrivateMessageSerializer

TAG = "freeim history"
BAD_CURSOR = "`{\"detail\": \"Invalid cursor\"}`: a `cursor` this endpoint did not make."


class ChanMessageName(OpenApiSerializerExtension):
    """A kept chan message under a name of its own: the core API's chan message body is ``ChanMessage``."""

    target_class = ChanMessageSerializer

    def get_name(self, auto_schema: AutoSchema, direction: Direction) -> str:
        return "HistoryChanMessage"


class Conversation(serializers.Serializer[Any]):
    """One of the caller's conversations."""

    peer = ClientIdField()
    unread = serializers.IntegerField(help_text="The peer's messages to the caller with no `read_at`.")
    last = PrivateMessageSerializer(help_text="The conversation's last message.")


describe(
    views.ConversationsView, operation_id="list_conversations", tags=[TAG], summary="The caller's conversations",
    description=f"The caller's {views.MAX_CONVERSATIONS} latest conversations, newest first: the peer, how many of "
                "its messages are unread, and the last message either way.",
    responses=responses({200: Conversation(many=True)}, {}))

describe(
    views.ConversationView, operation_id="get_conversation", tags=[TAG], summary="A conversation's messages",
    description="A page of the caller's messages with the peer, both ways, newest first: follow `next` for older "
                "ones. `id` is the one the message's frame carried.",
    parameters=[CLIENT_ID],
    responses=responses({200: PrivateMessageSerializer(many=True)}, {400: BAD_CLIENT_ID, 404: BAD_CURSOR}))

describe(
    views.ChanHistoryView, operation_id="get_chan_history", tags=[TAG], summary="A chan's messages",
    description="A page of the chan's messages, newest first: follow `next` for older ones. For the clients in "
                "the chan now, the clients its providers put in it (a group's members, online or not), and staff.",
    parameters=[chan_parameter()],
    responses=responses({200: ChanMessageSerializer(many=True)}, {
        400: BAD_CHAN, 403: f"{FORBIDDEN}; `not_a_member`: the caller may not read the chan.", 404: BAD_CURSOR,
        503: STORE}))
