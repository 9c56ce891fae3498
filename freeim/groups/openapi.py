"""The groups REST API described for drf-spectacular (see :mod:`freeim.openapi`); imported by the app's
``ready()`` when drf-spectacular is installed."""

from __future__ import annotations

from rest_framework import serializers

from freeim.openapi import (
    BAD_CLIENT_ID,
    BODY,
    CLIENT_ID,
    FORBIDDEN,
    NOT_JSON,
    SEND_UNAVAILABLE,
    STORE,
    TOO_LARGE,
    ChanMessageSent,
    chan_parameter,
    describe,
    responses,
)
from freeim.rest.serializers import ChanMessageSerializer, ClientIdField

from . import views
from .models import Role
from .serializers import AddMemberSerializer, GroupSerializer, MemberSerializer

TAG = "freeim groups"
SLUG = chan_parameter("slug", "The group's slug (its chan's name).")
UNKNOWN = "No such group, or (but to staff) it is inactive."
MANAGERS = (f"{FORBIDDEN}; the caller is not an owner or an admin of the group, nor staff; an admin adding or "
            "removing an admin or an owner.")


class MyGroup(GroupSerializer):
    """One of the caller's groups, with its role and the group's online member count."""

    role = serializers.ChoiceField(choices=Role.choices, help_text="The caller's role in the group.")
    online = serializers.IntegerField(help_text="Its online members.")

    class Meta(GroupSerializer.Meta):
        fields = [*GroupSerializer.Meta.fields, "role", "online"]


class GroupDetail(GroupSerializer):
    """A group with its members and who of them is online."""

    members = MemberSerializer(many=True)
    online = serializers.ListField(child=ClientIdField(), help_text="Its online members.")

    class Meta(GroupSerializer.Meta):
        fields = [*GroupSerializer.Meta.fields, "members", "online"]


class GroupMessageSent(ChanMessageSent):
    """A group message accepted for delivery."""

    chan = None  # type: ignore[assignment]  # DRF's way to drop an inherited field
    group = serializers.CharField(help_text="The group's slug.")


describe(
    views.MyGroupsView, operation_id="list_my_groups", tags=[TAG], summary="The caller's groups",
    description="The caller's active groups, with its role and each group's online member count.",
    responses=responses({200: MyGroup(many=True)}, {503: STORE}))

describe(
    views.GroupDetailView, operation_id="get_group", tags=[TAG], summary="A group and its members",
    description="The group, each member with its role and whether it is online, and the online members. Its "
                "members and staff only.",
    parameters=[SLUG],
    responses=responses({200: GroupDetail}, {
        403: f"{FORBIDDEN}; the caller is not a member of the group, nor staff.", 404: UNKNOWN, 503: STORE}))

describe(
    views.MembersView, operation_id="add_group_member", tags=[TAG], summary="Add a member",
    description="Adds a user (`user`) or a client that is not a user (`client_id`) to the group with `role`; "
                "online, it joins the group's chan at once. Owners add anyone, admins plain members, staff anyone.",
    parameters=[SLUG], request=AddMemberSerializer,
    responses=responses({201: MemberSerializer}, {
        400: f"{BODY}; `client_id`: already a member.", 403: MANAGERS, 404: UNKNOWN, 413: TOO_LARGE, 415: NOT_JSON,
        503: "`store_unavailable`: Redis cannot be reached to tell whether the new member is online; nothing was "
             "added."}))

describe(
    views.MemberView, operation_id="remove_group_member", tags=[TAG], summary="Remove a member",
    description="Removes the client from the group; online, it leaves the group's chan at once. Owners remove "
                "anyone, admins plain members, staff anyone.",
    parameters=[SLUG, CLIENT_ID],
    responses=responses({204: None}, {400: BAD_CLIENT_ID, 403: MANAGERS,
                                      404: f"{UNKNOWN} Or the client is not a member."}))

describe(
    views.GroupMessagesView, operation_id="send_group_message", tags=[TAG], summary="Send a group message",
    description="`data` (any JSON) from the caller to the group's chan: every member online gets it, the others "
                "from the chan's stream or the history. Members only. `key` as for `send_message`.",
    parameters=[SLUG], request=ChanMessageSerializer,
    responses=responses({202: GroupMessageSent}, {
        400: f"{BODY} (a message larger than `MAX_MESSAGE_BYTES`).",
        403: f"{FORBIDDEN}; the caller is not a member of the group.", 404: UNKNOWN, 413: TOO_LARGE, 415: NOT_JSON,
        503: SEND_UNAVAILABLE}))
