"""The groups REST API, on :class:`freeim.rest.views.FreeIMView` (same errors, same caller rules)."""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from freeim import im
from freeim.rest.serializers import ChanMessageSerializer
from freeim.rest.views import FreeIMView

from .models import Group, Membership, member_key
from .permissions import CanManageMembers, IsGroupMember, IsGroupMemberOrStaff, outranks
from .serializers import AddMemberSerializer, GroupSerializer, MemberSerializer


class GroupView(FreeIMView):
    """A view of the group named by the slug in the URL: 404 for an unknown (or, but to staff, inactive) one."""

    def get_group(self) -> Group:
        groups = Group.objects.all() if self.request.user.is_staff else Group.objects.filter(is_active=True)
        group = get_object_or_404(groups, slug=self.kwargs["slug"])
        self.check_object_permissions(self.request, group)
        return group

    def role_in(self, group: Group) -> str | None:
        """The caller's role in the request's group, None if not a member (looked up once per request)."""
        if not hasattr(self, "_role"):
            mine = group.memberships.filter(client_id=member_key(self.caller()))
            self._role = mine.values_list("role", flat=True).first()
        return self._role


class MyGroupsView(GroupView):
    def get(self, request: Request) -> Response:
        mine = Membership.objects.filter(client_id=member_key(self.caller()), group__is_active=True)
        # One count per group of the caller's (a few), rather than every chan of the deployment.
        return Response([{**GroupSerializer(m.group).data, "role": m.role, "online": im.get_chan_online(m.group.slug)}
                         for m in mine.select_related("group").order_by("group__slug")])


class GroupDetailView(GroupView):
    permission_classes = [IsAuthenticated, IsGroupMemberOrStaff]

    def get(self, request: Request, slug: str) -> Response:
        group = self.get_group()
        members = list(group.memberships.all())
        online = im.has_online([m.client for m in members])
        return Response({**GroupSerializer(group).data,
                         "members": MemberSerializer(members, many=True, context={"online": online}).data,
                         "online": [client for client, here in online.items() if here]})


class MemberManagementView(GroupView):
    permission_classes = [IsAuthenticated, CanManageMembers]

    def check_outranks(self, group: Group, role: str) -> None:
        if not self.request.user.is_staff and not outranks(self.role_in(group), role):
            raise PermissionDenied(f"Only owners (or staff) may add or remove a group's {role}s.")


class MembersView(MemberManagementView):
    def post(self, request: Request, slug: str) -> Response:
        group = self.get_group()
        body = self.body(AddMemberSerializer)
        self.check_outranks(group, body["role"])
        membership = Membership(group=group, user=body.get("user"), client_id=body.get("client_id", ""),
                                role=body["role"])
        membership.link()
        online = im.has_online([membership.client])  # before the save: a store that fails then adds nothing
        with transaction.atomic():
            if group.memberships.filter(client_id=membership.client_id).exists():
                raise ValidationError({"client_id": [f"{membership.client} is already a member."]})
            membership.save()
        return Response(MemberSerializer(membership, context={"online": online}).data, status=status.HTTP_201_CREATED)


class MemberView(MemberManagementView):
    def delete(self, request: Request, slug: str, client_id: str) -> Response:
        group = self.get_group()
        membership = get_object_or_404(group.memberships, client_id=member_key(client_id))
        self.check_outranks(group, membership.role)
        membership.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupMessagesView(GroupView):
    permission_classes = [IsAuthenticated, IsGroupMember]

    def post(self, request: Request, slug: str) -> Response:
        group = self.get_group()
        body = self.body(ChanMessageSerializer)
        message_id = im.send_chan_message(self.caller(), group.slug, body["data"], key=body["key"])
        return Response({"group": group.slug, "id": message_id}, status=status.HTTP_202_ACCEPTED)
