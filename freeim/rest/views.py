"""The REST API over :mod:`freeim.im`. Who is speaking always comes from ``request.user``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.utils.decorators import method_decorator
from rest_framework import status
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView, exception_handler, set_rollback

from .. import autojoin, ids, im
from ..auth import client_id_of
from ..exceptions import FreeIMError, ManagedChan, RequestTooLarge, UnknownPath
from .parsers import JSONParser
from .permissions import IsChanMember, MaySeeChan, hidden_chans
from .serializers import (
    ChanMessageSerializer,
    ConnectSerializer,
    DataSerializer,
    MessageSerializer,
    PageQuery,
    ReadSerializer,
    plainly_valid_connect,
)


def freeim_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """freeim errors become ``{"detail", "code"}`` with their status; the rest as DRF does."""
    if isinstance(exc, RequestDataTooBig):  # from reading request.data; Django would answer with an HTML 400
        exc = RequestTooLarge(f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    if isinstance(exc, FreeIMError):
        set_rollback()  # as DRF's handler does: under ATOMIC_REQUESTS the view's writes do not stay
        return Response({"detail": exc.message, "code": exc.code}, status=exc.status)
    return exception_handler(exc, context)


class FreeIMView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    def get_exception_handler(self) -> Any:
        return freeim_exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if "chan" in kwargs:
            ids.chan(kwargs["chan"])
        if "client_id" in kwargs:
            ids.client_id(kwargs["client_id"])
        super().initial(request, *args, **kwargs)

    def caller(self) -> ids.ClientId:
        return client_id_of(self.request.user)

    def body(self, serializer_class: type[Serializer[Any]]) -> dict[str, Any]:
        return self._valid(serializer_class, self.request.data)

    def query(self, serializer_class: type[Serializer[Any]]) -> dict[str, Any]:
        return self._valid(serializer_class, self.request.query_params)

    @staticmethod
    def _valid(serializer_class: type[Serializer[Any]], data: Any) -> dict[str, Any]:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        validated: dict[str, Any] = serializer.validated_data
        return validated


class ConnectView(FreeIMView):
    def post(self, request: Request) -> Response:
        body = plainly_valid_connect(request.data)
        if body is None:
            body = self.body(ConnectSerializer)  # it takes what is not plain, or says what is wrong
        caller = self.caller()
        join = [ids.chan(chan) for chan in body["join"]]
        managed = autojoin.managed_among(join) if join else set()  # the providers decide who is in those
        url, server = im.connect_ticket(caller, body["meta"], base=request, since=body["since"], avoid=body["avoid"],
                                        chans_since=body["chans_since"],
                                        join=[chan for chan in join if chan not in managed])
        return Response({"url": url, "client_id": caller, "server": server})


class MessagesView(FreeIMView):
    def post(self, request: Request) -> Response:
        body = self.body(MessageSerializer)
        message_id = im.send_message(self.caller(), body["to"], body["data"], receipt=body["receipt"], key=body["key"])
        return Response({"id": message_id, "to": body["to"], "receipt": body["receipt"]},
                        status=status.HTTP_202_ACCEPTED)


class ReadView(FreeIMView):
    """The caller read these messages of its inbox: their senders get ``read`` receipts (those that asked)."""

    def post(self, request: Request) -> Response:
        ids = self.body(ReadSerializer)["ids"]
        return Response({"receipts": im.mark_read(self.caller(), ids)})


class OnlineListView(FreeIMView):
    permission_classes = [IsAdminUser]

    def get(self, request: Request) -> Response:
        clients, after = im.get_client_page_by_online(**self.query(PageQuery))
        return Response({"clients": clients, "next": after or None})


class OnlineView(FreeIMView):
    def get(self, request: Request, client_id: str) -> Response:
        return Response({"client_id": ids.client_id(client_id), "online": im.has_online(client_id)})


class ForceOfflineView(FreeIMView):
    permission_classes = [IsAdminUser]

    def post(self, request: Request, client_id: str) -> Response:
        im.force_offline(client_id)
        return Response({"client_id": ids.client_id(client_id)}, status=status.HTTP_202_ACCEPTED)


class ChanListView(FreeIMView):
    """The chans with their online counts, a page at a time, but the managed ones the caller is not in (staff see
    all: a page may hold fewer than asked)."""

    def get(self, request: Request) -> Response:
        chans, after = im.get_chan_page(**self.query(PageQuery))
        hidden = hidden_chans(request, [chan for chan, _ in chans])
        return Response({"chans": [{"chan": chan, "online": online} for chan, online in chans if chan not in hidden],
                         "next": after or None})


class ChanMembershipView(FreeIMView):
    """Join or leave a chan on request; not a chan the server manages (:mod:`freeim.autojoin`)."""

    change: Callable[..., None]

    def post(self, request: Request, chan: str) -> Response:
        if autojoin.is_managed(chan):
            raise ManagedChan()
        self.change(self.caller(), chan)
        return Response({"chan": chan, "online": im.get_chan_online(chan)})


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class ChanJoinView(ChanMembershipView):
    """Join a chan on request, and never stay in one that became managed meanwhile.

    A chan can become managed while this request runs (a group created, renamed or reactivated
    with its name). Call that moment M: the test's data committed. Its after-commit effect E
    then evicts whoever is in the chan and may not be (:mod:`freeim.groups.live`). This view
    tests (T1), joins (J), and tests again (T2), in that order:

    * M before T1: T1 refuses (403), nothing joined.
    * M between T1 and T2: T2 sees the chan managed and the view leaves it again (403), whether
      E ran before J (and could not see the caller) or after it.
    * M after T2: E runs after M, so after J, and sees the caller in the chan: it evicts it.

    So every interleaving ends without a squatter. The undo keeps a caller the providers put
    in the chan (a member of the group just created), so a member never flaps out. T2 must see
    data committed after T1: the view writes nothing to the database, so it opts out of
    ``ATOMIC_REQUESTS``, whose transaction would hold T1's snapshot in SQLite and in MySQL's
    default REPEATABLE READ.
    """

    change = staticmethod(im.join_chan)

    def post(self, request: Request, chan: str) -> Response:
        response = super().post(request, chan)
        if autojoin.is_managed(chan):
            self.undo_join(chan)
            raise ManagedChan()
        return response

    def undo_join(self, chan: str) -> None:
        caller = self.caller()
        if chan not in autojoin.chans_for(caller):
            im.leave_chan(caller, chan)


class ChanLeaveView(ChanMembershipView):
    change = staticmethod(im.leave_chan)


class ChanMembersView(FreeIMView):
    permission_classes = [IsAuthenticated, MaySeeChan]

    def get(self, request: Request, chan: str) -> Response:
        return Response({"chan": chan, "members": im.get_chan_client_list(chan)})


class ChanMessagesView(FreeIMView):
    permission_classes = [IsAuthenticated, IsChanMember]

    def post(self, request: Request, chan: str) -> Response:
        body = self.body(ChanMessageSerializer)
        message_id = im.send_chan_message(self.caller(), chan, body["data"], key=body["key"])
        return Response({"chan": chan, "id": message_id}, status=status.HTTP_202_ACCEPTED)


class UnknownPathView(FreeIMView):
    """Any path under the API that no endpoint serves, whatever the method: 404 ``not_found``."""

    permission_classes = []

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        raise UnknownPath()


class BroadcastView(FreeIMView):
    permission_classes = [IsAdminUser]

    def post(self, request: Request) -> Response:
        im.send_broadcast_message(self.body(DataSerializer)["data"])
        return Response({"broadcast": True}, status=status.HTTP_202_ACCEPTED)
