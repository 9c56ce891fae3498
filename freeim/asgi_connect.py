"""The connect route under ASGI, served as under WSGI: Django's sync handler, in one call on the request's thread.

Django's ASGI handler serves a sync view in four calls to the request's thread (the
``request_started`` receivers, the view, rendering, closing the response), each a hand-over between
the event loop's thread and that one. Measured on a 2-core VM, each costs about 70 µs of CPU, and
the event loop around them as much again: more than the connect view itself. Terminals ask for a
connect URL every time they open a socket, thousands a second in a reconnect storm, so
:func:`freeim.asgi.wrap` sends the requests of that one path here: the request is read on the loop,
then served by Django's handler in its sync mode (the project's middleware, URL resolution, the view,
the request signals: what a WSGI server runs) in one call on the request's thread, and the answer
is sent from the loop. Other paths keep Django's ASGI handler: their views may be async.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch, reverse, set_script_prefix


class OneCallHandler(ASGIHandler):
    """Django's ASGI handler whose sync part runs in one call: its middleware loaded for the sync mode."""

    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await sync_to_async(self.serve)(scope, body_file)
            await self.send_response(response, send)
            if response.streaming:  # its content was made while it was sent: it closes now
                await sync_to_async(response.close)()
        finally:
            body_file.close()

    def serve(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """What ``WSGIHandler`` does with a request, on an ASGI one: its response, closed unless it streams."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error = self.create_request(scope, body_file)
        response = self.get_response(request) if request is not None else cast(HttpResponseBase, error)
        response._handler_class = self.__class__  # type: ignore[attr-defined]  # request_finished's sender
        if not response.streaming:
            response.close()  # request_finished, as a WSGI server closes it; its content is in hand
        return response


@functools.cache
def handler() -> OneCallHandler:
    """The process's handler, made on first use (as Django's ASGI one, it loads the middleware once)."""
    return OneCallHandler()


@functools.cache
def connect_path() -> str | None:
    """Where the project routes freeim's ``connect/`` (None if it does not)."""
    try:
        return reverse("freeim:connect")
    except NoReverseMatch:
        return None


@receiver(setting_changed)
def _forget(setting: str, **kwargs: object) -> None:
    if setting in ("ROOT_URLCONF", "MIDDLEWARE"):
        handler.cache_clear()
        connect_path.cache_clear()


def serves(scope: dict[str, Any]) -> bool:
    """Whether the HTTP request of ``scope`` is for the connect route."""
    path = connect_path()
    return path is not None and scope["path"] == scope.get("root_path", "") + path
