"""The admin of persistent groups: presence next to the data, and actions that reach sockets.

Presence is read once per page, never per row: the group list's online counts come from
one ``get_chan_list()``, a page of members' from one ``has_online([...])``, the "online
now" page's nodes from one ``get_client_nodes([...])`` (:mod:`.admin_pages`). If the store cannot be reached the
pages still render, with presence left blank and a warning. The live-ops page shows the nodes (:mod:`.admin_liveops`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from freeim import ids, im
from freeim.auth import client_id_of
from freeim.exceptions import FreeIMError

from .admin_liveops import live_ops, live_ops_status
from .admin_pages import MessageForm, as_message, online_now, presence, reporting
from .models import Group, Membership

if TYPE_CHECKING:
    from typing import TypedDict

    from django_stubs_ext import WithAnnotations

    class Counted(TypedDict):
        member_count: int  # annotated by GroupAdmin.get_queryset

    class Listed(Counted):
        online_count: int | None  # set on the list's rows by GroupAdmin.get_changelist_instance

    class Present(TypedDict):
        online_now: bool | None  # set on the list's rows by MembershipAdmin.get_changelist_instance

    # The stubs make Django's admin and form classes generic; at runtime they cannot be subscripted.
    MembershipFormBase = forms.ModelForm[Membership]
    MembershipInlineBase = admin.TabularInline[Membership, Group]
    GroupAdminBase = admin.ModelAdmin[Group]
    MembershipAdminBase = admin.ModelAdmin[Membership]
else:
    MembershipFormBase = forms.ModelForm
    MembershipInlineBase = admin.TabularInline
    GroupAdminBase = MembershipAdminBase = admin.ModelAdmin

#: Members shown on a group's page; the rest are one click away, in the paginated member list.
MEMBERS_ON_GROUP_PAGE = 100


def user_picker(site: admin.AdminSite, request: HttpRequest) -> list[str]:
    """``["user"]`` where members can be picked by searching users (the admin's autocomplete), else ``[]``.

    The autocomplete searches the user model's admin's ``search_fields`` (Django's ``UserAdmin``: username,
    names, email); a project whose user admin has none, or is not registered (a custom user model's, say),
    keeps the ``raw_id_fields`` picker, a user id (Django's system checks would refuse a static
    ``autocomplete_fields`` there)."""
    try:
        users = site.get_model_admin(get_user_model())
    except NotRegistered:
        return []
    return ["user"] if users.get_search_fields(request) else []


class MembershipForm(MembershipFormBase):
    """Fills the client id from the user while cleaning, so duplicates are caught across the rows of a page."""

    def clean(self) -> dict[str, Any]:
        super().clean()  # a model form's clean returns its cleaned_data
        data = self.cleaned_data
        if self.has_error("user") or self.has_error("client_id"):
            return data
        probe = Membership(user=data.get("user"), client_id=data.get("client_id") or "")
        try:
            probe.link()
        except FreeIMError as error:
            self.add_error("client_id", error.message)
        else:
            data["client_id"] = probe.client_id
        return data


class AddMemberForm(MembershipForm):
    def validate_unique(self) -> None:
        """Also check the one-membership constraint, which Django skips in inline formsets (the group is their
        foreign key, left out of constraint checks), so a duplicate is a form error rather than a crash."""
        super().validate_unique()
        # The ignores: BaseModelForm's private helpers, which django-stubs leaves out.
        try:
            exclude = self._get_validation_exclusions() - {"group"}  # type: ignore[attr-defined]
            self.instance.validate_constraints(exclude=exclude)
        except ValidationError as error:
            self._update_errors(error)  # type: ignore[attr-defined]


class MemberInline(MembershipInlineBase):
    """The group's first members, with who is online; roles editable, members removable."""

    model = Membership
    fields = ["client_id", "user", "role", "joined_at", "online"]
    readonly_fields = ["client_id", "user", "joined_at", "online"]
    extra = 0
    verbose_name_plural = f"members (the first {MEMBERS_ON_GROUP_PAGE}; the member list has them all)"
    online_now: dict[ids.ClientId, bool]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # new members come through AddMemberInline, whose rows are editable

    def get_formset(self, request: HttpRequest, obj: Group | None = None, **kwargs: Any) -> Any:
        # Inline instances are made per request (and get_formset comes before get_queryset),
        # so the page's members and their presence can live on this one.
        shown = list(obj.memberships.values_list("pk", "client_id")[:MEMBERS_ON_GROUP_PAGE]) if obj else []
        self.shown = [pk for pk, _client in shown]
        self.online_now = presence(request, lambda: im.has_online(ids.client_ids(c for _pk, c in shown)), {})
        return super().get_formset(request, obj, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        members = super().get_queryset(request).select_related("user")
        shown = getattr(self, "shown", None)
        return members if shown is None else members.filter(pk__in=shown)

    @admin.display(description="online", boolean=True)
    def online(self, membership: Membership) -> bool | None:
        return self.online_now.get(membership.client)


class AddMemberInline(MembershipInlineBase):
    """Empty rows to add members: pick a user, or type a client id for a client that is not a user."""

    model = Membership
    form = AddMemberForm
    fields = ["user", "client_id", "role"]
    raw_id_fields = ["user"]  # unless user_picker finds the users searchable
    extra = 3
    verbose_name_plural = "add members"

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        return user_picker(self.admin_site, request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        return super().get_queryset(request).none()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_add_permission(request, obj)


@admin.register(Group)
class GroupAdmin(GroupAdminBase):
    list_display = ["slug", "title", "is_active", "member_count", "online_count", "created_at"]
    list_filter = ["is_active", "created_at", "updated_at"]
    search_fields = ["slug", "title", "description"]
    readonly_fields = ["members_summary", "created_at", "updated_at"]
    inlines = [MemberInline, AddMemberInline]
    actions = ["announce"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        online = presence(request, lambda: dict(im.get_chan_list()), None)
        for group in changelist.result_list:
            group.online_count = None if online is None else online.get(group.slug, 0)
        return changelist

    @admin.display(description="members", ordering="member_count")
    def member_count(self, group: WithAnnotations[Group, Counted]) -> int:
        return group.member_count

    @admin.display(description="online now")
    def online_count(self, group: WithAnnotations[Group, Listed]) -> int | None:
        return group.online_count

    @admin.display(description="members")
    def members_summary(self, group: WithAnnotations[Group, Counted]) -> str:
        if group.pk is None:
            return "-"
        online = presence(None, lambda: im.get_chan_online(group.slug), None) if group.is_active else 0
        url = reverse("admin:freeim_groups_membership_changelist") + f"?group__id__exact={group.pk}"
        return format_html('{} ({} online now): <a href="{}">the member list</a>', group.member_count,
                           "?" if online is None else online, url)

    @admin.action(description="Send an announcement to the selected groups", permissions=["change"])
    def announce(self, request: HttpRequest, queryset: QuerySet[Group]) -> HttpResponse | None:
        form = MessageForm(request.POST if "send" in request.POST else None)
        if not form.is_valid():
            context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                       "groups": queryset, "title": "Send an announcement",
                       "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME}
            return TemplateResponse(request, "admin/freeim_groups/group/announce.html", context)
        live = [group.slug for group in queryset if group.is_active]
        with reporting(request):
            for slug in live:
                im.send_chan_message(client_id_of(request.user), slug, as_message(form.cleaned_data["text"]))
            self.message_user(request, ngettext("Announcement sent to %d active group.",
                                                "Announcement sent to %d active groups.", len(live)) % len(live),
                              messages.SUCCESS)
        return None

    def get_urls(self) -> list[Any]:
        pages = [path(route, self.admin_site.admin_view(functools.partial(view, self)), name=f"freeim_groups_{name}")
                 for route, view, name in (("online/", online_now, "online"), ("liveops/", live_ops, "liveops"),
                                           ("liveops/status/", live_ops_status, "liveops_status"))]
        return [*pages, *super().get_urls()]


@admin.register(Membership)
class MembershipAdmin(MembershipAdminBase):
    list_display = ["client_id", "user", "group", "role", "online", "joined_at"]
    list_filter = ["role", "group__is_active", "joined_at"]
    list_select_related = ["group", "user"]
    search_fields = ["client_id", "group__slug", "group__title"]
    raw_id_fields = ["user"]  # unless user_picker finds the users searchable
    readonly_fields = ["joined_at"]
    form = MembershipForm
    actions = ["force_offline"]

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        return ["group", *user_picker(self.admin_site, request)]

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        members = changelist.result_list
        online: dict[ids.ClientId, bool] = presence(request, lambda: im.has_online([m.client for m in members]), {})
        for membership in members:
            membership.online_now = online.get(membership.client)
        return changelist

    @admin.display(description="online", boolean=True)
    def online(self, membership: WithAnnotations[Membership, Present]) -> bool | None:
        return membership.online_now

    @admin.action(description="Force the selected members offline", permissions=["change"])
    def force_offline(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        clients = ids.client_ids(queryset.values_list("client_id", flat=True))
        with reporting(request):
            online = [client for client, here in im.has_online(clients).items() if here]
            for client in online:
                im.force_offline(client)
            self.message_user(request, f"{len(online)} online members forced offline.", messages.SUCCESS)
