"""The kept messages in the admin, read-only: what was said is neither edited nor deleted after the fact (and a
deletion would take one participant's copy only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import ChanMessage, PrivateMessage

if TYPE_CHECKING:
    PrivateMessageAdminBase = admin.ModelAdmin[PrivateMessage]
    ChanMessageAdminBase = admin.ModelAdmin[ChanMessage]
else:  # the stubs make ModelAdmin generic; at runtime it cannot be subscripted
    PrivateMessageAdminBase = ChanMessageAdminBase = admin.ModelAdmin


class ReadOnly:
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PrivateMessage)
class PrivateMessageAdmin(ReadOnly, PrivateMessageAdminBase):
    list_display = ["sent_at", "sender", "receivers", "data"]
    list_filter = ["sent_at"]
    search_fields = ["=sender", "=message_id", "=copies__owner"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PrivateMessage]:
        return super().get_queryset(request).prefetch_related("copies")

    @admin.display(description="receivers (read at)")
    def receivers(self, message: PrivateMessage) -> str:
        return ", ".join(f"{copy.owner} ({copy.read_at:%Y-%m-%d %H:%M} )" if copy.read_at else copy.owner
                         for copy in message.copies.all() if not copy.outgoing)


@admin.register(ChanMessage)
class ChanMessageAdmin(ReadOnly, ChanMessageAdminBase):
    list_display = ["sent_at", "chan", "sender", "data"]
    list_filter = ["sent_at"]
    search_fields = ["=chan", "=sender", "=message_id"]
