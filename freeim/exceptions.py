"""One error hierarchy for freeim.

Each error carries a stable ``code`` and an HTTP ``status``; the REST API turns
them into responses in one place (:func:`freeim.rest.views.freeim_exception_handler`).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class FreeIMError(Exception):
    """Base class of every error freeim raises on purpose."""

    code = "error"
    status = 500
    default_message = "freeim error."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


class InvalidClientId(FreeIMError, ValueError):
    code = "invalid_client_id"
    status = 400
    default_message = ("Client ids are non-empty ints or strings of printable characters, at most "
                       "MAX_CLIENT_ID_LENGTH digits or characters long.")


class InvalidChan(FreeIMError, ValueError):
    code = "invalid_chan"
    status = 400
    default_message = "Chan names are 1-100 characters from letters, digits and . _ - : @"


class InvalidMessage(FreeIMError, ValueError):
    code = "invalid_message"
    status = 400
    default_message = "The message must be JSON-serialisable and at most MAX_MESSAGE_BYTES once encoded."


class UnknownPath(FreeIMError):
    code = "not_found"
    status = 404
    default_message = "No such endpoint (freeim's paths end with '/')."


class BadCursor(FreeIMError, ValueError):
    code = "bad_cursor"
    status = 400
    default_message = "Not a cursor of this list: pass the 'next' of the page before, or none for the first page."


class ClientOffline(FreeIMError):
    code = "client_offline"
    status = 409
    default_message = "The client is not online."


class NotAChanMember(FreeIMError):
    code = "not_a_member"
    status = 403
    default_message = "Only members of the chan may do this."


class ManagedChan(FreeIMError):
    code = "managed_chan"
    status = 403
    default_message = "The server manages this chan's members: it cannot be joined or left on request."


class TooManyChans(FreeIMError):
    code = "too_many_chans"
    status = 403
    default_message = "The client is already in MAX_CHANS_PER_CLIENT chans."


class TooManyConnections(FreeIMError):
    code = "too_many_connections"
    status = 403
    default_message = "The client already holds MAX_CONNECTIONS_PER_CLIENT connections."


class FanoutTooLarge(FreeIMError):
    code = "fanout_too_large"
    status = 413
    default_message = "The message times its receivers is more than MAX_FANOUT_BYTES."


class NestingTooDeep(FreeIMError, ValueError):
    code = "too_deep"
    status = 400
    default_message = "The JSON is nested more than MAX_JSON_DEPTH levels deep."


class RequestTooLarge(FreeIMError):
    code = "request_too_large"
    status = 413
    default_message = "The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE."


class NoServerAvailable(FreeIMError):
    code = "no_server"
    status = 503
    default_message = "No freeim server node is available."


class HistoryUnavailable(FreeIMError):
    code = "history_unavailable"
    status = 503
    default_message = "The message history is unavailable; nothing was sent."


class StoreUnavailable(FreeIMError):
    code = "store_unavailable"
    status = 503
    default_message = "The freeim store is unavailable; nothing was sent."


class NoConnectBase(FreeIMError, ImproperlyConfigured):
    code = "no_connect_base"
    status = 500
    default_message = ("FREEIM['SERVERS'] is empty, so freeim cannot know the URL terminals reach this node at: "
                       "pass base=request (the scheme and host the request came in on) or a base URL such as "
                       "'wss://example.com', or list the nodes in FREEIM['SERVERS'].")


class NoEmbeddedNode(FreeIMError, ImproperlyConfigured):
    """The embedded backend was used outside the process that holds its state (see :func:`freeim.backends.host_here`):
    what this process sent would reach no socket, and what it read would be empty."""

    code = "no_embedded_node"
    status = 500
    default_message = (
        "freeim runs embedded (FREEIM has no REDIS_URL): its presence, tokens and messages live in the memory of "
        "the one server process whose node runs (daphne, uvicorn or hypercorn serving your ASGI application), and "
        "this process is not it: what it sent would reach no socket, and what it read would be empty. Set "
        "FREEIM['REDIS_URL'] (pip install 'django-freeim[redis]') to use freeim from shells, workers, WSGI "
        "processes or several servers. In tests, freeim.testing's pytest plugin or FreeIMTestMixin run the "
        "embedded node in the test process."
    )
