"""The history API: a caller's conversations, and pages of one conversation or one chan, newest first.

Pages follow DRF's cursor pagination (``next`` / ``previous`` links, ``?limit=``): a page stays
right while new messages arrive, and each is one index range.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Count, Max, Q, QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from freeim import autojoin, ids
from freeim.exceptions import NotAChanMember
from freeim.rest.permissions import in_chan
from freeim.rest.views import FreeIMView

from .models import ChanMessage, Copy
from .serializers import ChanMessageSerializer, PrivateMessageSerializer

#: Conversations the list shows: the most recent ones.
MAX_CONVERSATIONS = 100


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def decode_cursor(self, request: Request) -> Cursor | None:
        """DRF's, with the position checked too: it is an id here, and one that is not (a cursor made by hand)
        was a 500 from the query."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not _ROW_ID.fullmatch(str(cursor.position)):
            raise NotFound(self.invalid_cursor_message)
        return cursor


#: A row id: 19 digits hold every 64-bit one (more was a 500: ``int()`` refuses 4,301 digits and more).
_ROW_ID = re.compile(r"[0-9]{1,19}")


class ConversationsView(FreeIMView):
    """The caller's latest conversations: the peer, how many of its messages are unread, and the last one."""

    def get(self, request: Request) -> Response:
        mine = Copy.objects.filter(owner=str(self.caller()))
        latest = list(mine.values("peer").annotate(last=Max("id"), unread=Count("id", filter=Q(outgoing=False,
                                                                                                read_at=None)))
                      .order_by("-last")[:MAX_CONVERSATIONS])
        last = Copy.objects.select_related("message").in_bulk([row["last"] for row in latest])
        return Response([{"peer": ids.client_id(row["peer"]), "unread": row["unread"],
                          "last": PrivateMessageSerializer(last[row["last"]]).data} for row in latest])


class PagedView(FreeIMView):
    pagination_class = NewestFirst
    serializer_class: Any

    def page_of(self, messages: QuerySet[Any]) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(messages, self.request, view=self)
        return paginator.get_paginated_response(self.serializer_class(page, many=True).data)


class ConversationView(PagedView):
    """The caller's messages with one peer, both ways, newest first."""

    serializer_class = PrivateMessageSerializer

    def get(self, request: Request, client_id: str) -> Response:
        peer = ids.client_id(client_id)
        return self.page_of(Copy.objects.filter(owner=str(self.caller()), peer=str(peer)).select_related("message"))


class MayReadChan(BasePermission):
    """Staff, a member of the chan, or a client the providers put in it (a group's member, online or not)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        chan = view.kwargs["chan"]
        if request.user.is_staff or in_chan(request, chan) or chan in autojoin.chans_for(view.caller()):
            return True
        raise NotAChanMember("Only members of the chan may read its history.")


class ChanHistoryView(PagedView):
    """A chan's messages, newest first."""

    permission_classes = [IsAuthenticated, MayReadChan]
    serializer_class = ChanMessageSerializer

    def get(self, request: Request, chan: str) -> Response:
        return self.page_of(ChanMessage.objects.filter(chan=chan))
