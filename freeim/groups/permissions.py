"""Who may do what to a group through the REST API (object permissions on :class:`Group`)."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from .models import RANK, Group, Role


def outranks(actor: str | None, target: str) -> bool:
    """Whether a member with role ``actor`` may add or remove one with role ``target``:
    owners manage anyone, admins plain members only."""
    return actor == Role.OWNER or (actor is not None and RANK[actor] > RANK[target])


class IsGroupMember(BasePermission):
    """The caller is a member of the group."""

    message = "Only members of the group may do this."

    def has_object_permission(self, request: Any, view: Any, group: Group) -> bool:
        return view.role_in(group) is not None


class IsGroupMemberOrStaff(IsGroupMember):
    """The caller is a member of the group, or staff."""

    message = "Only members of the group, or staff, may see it."

    def has_object_permission(self, request: Any, view: Any, group: Group) -> bool:
        return request.user.is_staff or super().has_object_permission(request, view, group)


class CanManageMembers(BasePermission):
    """The caller is an owner or an admin of the group, or staff."""

    message = "Only the group's owners and admins, or staff, may manage its members."

    def has_object_permission(self, request: Any, view: Any, group: Group) -> bool:
        return request.user.is_staff or view.role_in(group) in (Role.OWNER, Role.ADMIN)
