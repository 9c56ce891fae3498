"""freeim's REST API described for drf-spectacular (the ``openapi`` extra): what each endpoint takes and answers,
with its real status codes and error bodies.

freeim's views build their answers by hand on plain ``APIView`` s, where drf-spectacular sees nothing. Its way
for a library is extensions, which register themselves when their module is imported: each app's ``ready()``
imports its ``openapi`` module when drf-spectacular is installed (this one, ``freeim.groups.openapi``,
``freeim.history.openapi``), and freeim runs without it. The views stay as they are; a view described here is
shown to drf-spectacular as a subclass carrying its ``extend_schema``. The answers' serializers below only
describe: tests/e2e/test_openapi.py holds a real server to them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import (
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
    OpenApiViewExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.views import APIView

from . import ids
from .rest import views
from .rest.serializers import (
    ChanMessageSerializer,
    ClientIdField,
    ConnectSerializer,
    DataSerializer,
    MessageSerializer,
    PageQuery,
    ReadSerializer,
)

TAG = "freeim"


def describe(view: type[APIView], **schema: Any) -> None:
    """Show ``view`` to drf-spectacular with ``extend_schema(**schema)`` on its one method (every freeim view
    has one)."""
    (method,) = (name for name in view.http_method_names if name not in ("head", "options") and hasattr(view, name))

    class Description(OpenApiViewExtension):
        target_class = view

        def view_replacement(self) -> type[APIView]:
            described: type[APIView] = extend_schema_view(**{method: extend_schema(**schema)})(
                type(view.__name__, (view,), {}))
            return described


# --- errors -------------------------------------------------------------------------------------------------------


class Error(serializers.Serializer[Any]):
    """An error. freeim's carry a stable ``code`` (:mod:`freeim.exceptions`, turned into answers by
    ``freeim_exception_handler``); DRF's own (authentication, permissions, unknown objects, media types) a
    ``detail`` only."""

    detail = serializers.CharField()
    code = serializers.CharField(required=False, help_text="freeim's error code, as the description lists them.")


class BadRequest(serializers.Serializer[Any]):
    """Bad input: freeim's ``{"detail", "code"}``, ``{"detail"}`` for a body that is not JSON, or DRF's field errors,
    ``{"<field>": ["<message>"]}``, keyed by position or key for the items of a list or an object."""

    detail = serializers.CharField(required=False)
    code = serializers.CharField(required=False, help_text="freeim's error code, as the description lists them.")


class BadRequestSchema(OpenApiSerializerExtension):
    """Adds DRF's field errors to :class:`BadRequest`: any other key holds messages, or messages per item."""

    target_class = BadRequest

    def map_serializer(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        messages = {"type": "array", "items": {"type": "string"}}
        per_item = {"type": "object", "additionalProperties": {"oneOf": [messages, {"type": "object"}]}}
        schema: dict[str, Any] = super().map_serializer(auto_schema, direction)
        return {**schema, "additionalProperties": {"oneOf": [messages, per_item]}}


def responses(answers: dict[int, Any], errors: dict[int, str]) -> dict[int, Any]:
    """``answers`` (status -> serializer), then ``errors`` (status -> what it means here) with their bodies,
    401 and 403 on every endpoint."""
    errors = {401: UNAUTHENTICATED, 403: f"{FORBIDDEN}.", **errors}
    return {**answers, **{status: OpenApiResponse(BadRequest if status == 400 else Error, description=text)
                          for status, text in sorted(errors.items())}}


UNAUTHENTICATED = ("Not authenticated, where the first authentication class asks for credentials (HTTP Basic, as in "
                   "the demo); else 403.")
FORBIDDEN = ("Not allowed: not authenticated (where no authentication class asks for credentials), or a session "
             "without its CSRF token")
BODY = ("Bad input: DRF's field errors; `{\"detail\"}` for a body that is not JSON; `too_deep` for a body nested more "
        "than 64 levels; `invalid_message`")
TOO_LARGE = "`request_too_large`: the body is larger than Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`."
NOT_JSON = "The body's `Content-Type` is not `application/json`."
STORE = "`store_unavailable`: Redis cannot be reached (cluster mode); nothing was done."
SEND_UNAVAILABLE = ("`history_unavailable` (the database of `freeim.history` cannot be reached) or "
                    "`store_unavailable` (Redis cannot be reached): nothing was sent; try again with the same `key`.")


# --- ids ----------------------------------------------------------------------------------------------------------


class ClientIdSchema(OpenApiSerializerFieldExtension):
    """A client id: an int, or a string that is not decimal digits (those are that int)."""

    target_class = ClientIdField

    def get_name(self) -> str:
        return "ClientId"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return {"oneOf": [{"type": "integer"},
                          {"type": "string", "minLength": 1, "maxLength": ids.MAX_CLIENT_ID_LENGTH}],
                "description": "A client id: an int, or a string of printable characters; a string of decimal "
                               "digits is that int. At most `MAX_CLIENT_ID_LENGTH` characters (128 by default)."}


def chan_parameter(name: str = "chan", description: str = "A chan's name.") -> OpenApiParameter:
    """A chan name in the path, with the rules of :data:`freeim.ids.CHAN_PATTERN`."""
    return OpenApiParameter(name, str, OpenApiParameter.PATH, pattern=ids.CHAN_PATTERN.pattern.replace(r"\Z", "$"),
                            description=f"{description} 1-100 characters from letters, digits and `. _ - : @`.")


CLIENT_ID = OpenApiParameter(
    "client_id", str, OpenApiParameter.PATH,
    description="A client id (decimal digits name the int client id); 400 `invalid_client_id` if it is not one.")
BAD_CHAN = "`invalid_chan`: the chan name breaks the rules."
BAD_CLIENT_ID = "`invalid_client_id`: not a client id."
BAD_PAGE = "`bad_cursor`: `cursor` is not a `next` this list gave; or `count` is not 1-10,000."


# --- answers ------------------------------------------------------------------------------------------------------


class ConnectAnswer(serializers.Serializer[Any]):
    """Where the caller's terminal opens its WebSocket."""

    url = serializers.CharField(help_text="The one-time WebSocket URL: `ws(s)://<node><PATH>?token=...`, valid for "
                                          "`TOKEN_TTL` seconds.")
    client_id = ClientIdField(help_text="The caller's client id.")
    server = serializers.CharField(help_text="The node's name: `avoid` it on the next connect if it is lost.")


class MessageSent(serializers.Serializer[Any]):
    """A private message accepted for delivery."""

    id = serializers.CharField(help_text="The message's id, in its frame and its receipts.")
    to = serializers.ListField(child=ClientIdField())
    receipt = serializers.BooleanField()


class ReadAnswer(serializers.Serializer[Any]):
    """The receipts a read sent."""

    receipts = serializers.IntegerField(help_text="How many `read` receipts went out.")


def next_page() -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text=(
        "What to pass as `cursor` for the next page; null on the last page. An item there the whole time pages are "
        "read is in one page at least; one that comes or goes meanwhile may be in none, or in two."))


class OnlineClients(serializers.Serializer[Any]):
    """A page of the online clients."""

    clients = serializers.ListField(child=ClientIdField())
    next = next_page()


class ClientOnline(serializers.Serializer[Any]):
    """Whether a client is online."""

    client_id = ClientIdField()
    online = serializers.BooleanField()


class ClientAnswer(serializers.Serializer[Any]):
    """The client acted on."""

    client_id = ClientIdField()


class ChanOnline(serializers.Serializer[Any]):
    """A chan and its online member count."""

    chan = serializers.CharField()
    online = serializers.IntegerField(help_text="Its online members.")


class ChanPage(serializers.Serializer[Any]):
    """A page of the chans."""

    chans = ChanOnline(many=True)
    next = next_page()


class ChanMembers(serializers.Serializer[Any]):
    """A chan's members."""

    chan = serializers.CharField()
    members = serializers.ListField(child=ClientIdField())


class ChanMessageSent(serializers.Serializer[Any]):
    """A chan message accepted for delivery."""

    chan = serializers.CharField()
    id = serializers.CharField(help_text="The message's id, in its frame.")


class Broadcast(serializers.Serializer[Any]):
    """A broadcast accepted for delivery."""

    broadcast = serializers.BooleanField(help_text="Always true.")


# --- the endpoints of freeim.urls ---------------------------------------------------------------------------------

describe(
    views.ConnectView, operation_id="connect", tags=[TAG], summary="A WebSocket URL for the caller",
    description="A one-time URL to open the caller's WebSocket on its node. `since` and `chans_since`: the last "
                "position the terminal holds in its inbox and per chan (`\"*\"`: none yet), to get what it missed "
                "first; `join`: chans to join as the socket opens (at most `MAX_CHANS_PER_CLIENT`; the managed ones "
                "are left out); `avoid`: the `server` of a connection just lost.",
    request=ConnectSerializer,
    responses=responses({200: ConnectAnswer}, {
        400: f"{BODY}.", 413: TOO_LARGE, 415: NOT_JSON,
        503: "`no_server` (no node is alive) or `store_unavailable` (Redis cannot be reached)."}))

describe(
    views.MessagesView, operation_id="send_message", tags=[TAG], summary="Send a private message",
    description="`data` (any JSON) from the caller to every device of each client in `to`; a receiver that is away "
                "finds it in its inbox when it comes back. `receipt`: the caller's sockets get one receipt per "
                "receiver (`delivered` or `offline`, later `read`). `key`: the caller's idempotency key: a POST "
                "retried with it sends nothing new and answers with the same id.",
    request=MessageSerializer,
    responses=responses({202: MessageSent}, {
        400: f"{BODY} (a message larger than `MAX_MESSAGE_BYTES`).",
        413: f"`fanout_too_large`: the message times its receivers is more than `MAX_FANOUT_BYTES`. {TOO_LARGE}",
        415: NOT_JSON,
        503: SEND_UNAVAILABLE}))

describe(
    views.ReadView, operation_id="mark_read", tags=[TAG], summary="Mark messages read",
    description="The caller read these messages of its inbox (their ids): their senders that asked for receipts "
                "get `read` ones, and the history marks them read.",
    request=ReadSerializer,
    responses=responses({200: ReadAnswer}, {400: f"{BODY}.", 413: TOO_LARGE, 415: NOT_JSON, 503: STORE}))

describe(
    views.OnlineListView, operation_id="list_online", tags=[TAG], summary="The online clients (staff)",
    description="The online client ids, a page at a time: follow `next` until it is null. Staff only.",
    parameters=[PageQuery],
    responses=responses({200: OnlineClients}, {
        400: BAD_PAGE, 403: f"{FORBIDDEN}; the caller is not staff.", 503: STORE}))

describe(
    views.OnlineView, operation_id="get_online", tags=[TAG], summary="Is a client online",
    description="Whether the client has a socket open anywhere.", parameters=[CLIENT_ID],
    responses=responses({200: ClientOnline}, {400: BAD_CLIENT_ID, 503: STORE}))

describe(
    views.ForceOfflineView, operation_id="force_offline", tags=[TAG], summary="Force a client offline (staff)",
    description="Closes every socket of the client with close code 4000. Staff only.", parameters=[CLIENT_ID],
    request=None,
    responses=responses({202: ClientAnswer}, {
        400: BAD_CLIENT_ID, 403: f"{FORBIDDEN}; the caller is not staff.", 503: STORE}))

describe(
    views.ChanListView, operation_id="list_chans", tags=[TAG], summary="The chans",
    description="The chans with their online member counts, a page at a time (follow `next` until it is null), but "
                "the managed ones (e.g. a group's) the caller is not in; staff see all. A page may hold fewer chans "
                "than `count` and still not be the last.",
    parameters=[PageQuery],
    responses=responses({200: ChanPage}, {400: BAD_PAGE, 503: STORE}))

MANAGED = "`managed_chan`: the server manages this chan's members (e.g. a group's)"

describe(
    views.ChanJoinView, operation_id="join_chan", tags=[TAG], summary="Join a chan",
    description="The caller joins the chan until its last socket closes. Not a chan the server manages (e.g. a "
                "group's), also when it became managed while the request ran (the join is undone).",
    parameters=[chan_parameter()], request=None,
    responses=responses({200: ChanOnline}, {
        400: BAD_CHAN,
        403: f"{FORBIDDEN}; {MANAGED}; `too_many_chans`: the caller is in `MAX_CHANS_PER_CLIENT` chans already.",
        409: "`client_offline`: the caller has no open socket; chans are joined by online clients.",
        503: STORE}))

describe(
    views.ChanLeaveView, operation_id="leave_chan", tags=[TAG], summary="Leave a chan",
    description="The caller leaves the chan (its sockets get a `left` frame). Not a chan the server manages.",
    parameters=[chan_parameter()], request=None,
    responses=responses({200: ChanOnline}, {400: BAD_CHAN, 403: f"{FORBIDDEN}; {MANAGED}.", 503: STORE}))

describe(
    views.ChanMembersView, operation_id="list_chan_members", tags=[TAG], summary="A chan's members",
    description="The clients in the chan. A managed chan's only to its members and staff.",
    parameters=[chan_parameter()],
    responses=responses({200: ChanMembers}, {
        400: BAD_CHAN, 403: f"{FORBIDDEN}; `not_a_member`: a managed chan, and the caller is not in it.",
        503: STORE}))

describe(
    views.ChanMessagesView, operation_id="send_chan_message", tags=[TAG], summary="Send a chan message",
    description="`data` (any JSON) from the caller to every member of the chan, and into the chan's stream, which "
                "members that come back catch up on. Members only. `key` as for `send_message`.",
    parameters=[chan_parameter()], request=ChanMessageSerializer,
    responses=responses({202: ChanMessageSent}, {
        400: f"{BODY} (a message larger than `MAX_MESSAGE_BYTES`); {BAD_CHAN}",
        403: f"{FORBIDDEN}; `not_a_member`: the caller is not in the chan.", 413: TOO_LARGE, 415: NOT_JSON,
        503: SEND_UNAVAILABLE}))

describe(
    views.BroadcastView, operation_id="broadcast", tags=[TAG], summary="Send to every socket (staff)",
    description="`data` (any JSON) to every connection on every node. Staff only.",
    request=DataSerializer,
    responses=responses({202: Broadcast}, {
        400: f"{BODY} (a message larger than `MAX_MESSAGE_BYTES`).",
        403: f"{FORBIDDEN}; the caller is not staff.", 413: TOO_LARGE, 415: NOT_JSON, 503: STORE}))
