"""Bodies and answers of the groups REST API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from freeim import ids
from freeim.rest.serializers import ClientIdField

from .models import Group, Membership, Role


class GroupSerializer(serializers.ModelSerializer[Group]):
    class Meta:
        model = Group
        fields = ["slug", "title", "description", "is_active", "created_at", "updated_at"]


class MemberSerializer(serializers.ModelSerializer[Membership]):
    """A member; ``online`` comes from the ``online`` dict in the context (one presence lookup per answer)."""

    client_id = serializers.SerializerMethodField()
    online = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["client_id", "user", "role", "joined_at", "online"]

    def get_client_id(self, membership: Membership) -> ids.ClientId:
        return membership.client

    def get_online(self, membership: Membership) -> bool:
        online: dict[ids.ClientId, bool] = self.context["online"]
        return online.get(membership.client, False)


class UserField(serializers.PrimaryKeyRelatedField):  # type: ignore[type-arg]
    """A user by its primary key, never by a float: DRF's field let the database truncate one (``2.5`` named user 2)
    and failed on ``1e400`` (infinity, as JSON parses it) with a 500."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, float):
            self.fail("incorrect_type", data_type="number with a fraction or an exponent")
        return super().to_internal_value(data)


class AddMemberSerializer(serializers.Serializer[Any]):
    """``{"user": pk}`` or ``{"client_id": id}`` (for clients that are not users), and a role."""

    user = UserField(queryset=get_user_model()._default_manager.all(), required=False)
    client_id = ClientIdField(required=False)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("user" in attrs) == ("client_id" in attrs):
            raise serializers.ValidationError("Give either a user or a client id.")
        return attrs
