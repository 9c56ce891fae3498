"""The admin's "online now" page, and what every admin page that reaches sockets shares: presence read
without failing the page, actions whose refusal is shown on it, and the message they send.

Every online client with its nodes and connections, a page at a time (one ``get_client_nodes`` per
page); staff with change rights broadcast and force clients offline from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from freeim import ids, im
from freeim.backends.contract import Page
from freeim.exceptions import BadCursor, FreeIMError

from .models import users_of_clients

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

T = TypeVar("T")
ONLINE_PER_PAGE = 100


def presence(request: HttpRequest | None, lookup: Callable[[], T], default: T) -> T:
    """``lookup()``, or ``default`` (with a warning on the page, given the request) if the store cannot answer."""
    try:
        return lookup()
    except FreeIMError as error:
        if request is not None:
            messages.warning(request, f"Presence is unavailable: {error.message}")
        return default


@contextlib.contextmanager
def reporting(request: HttpRequest) -> Iterator[None]:
    """Run an action; if freeim refuses it (bad input, store unavailable), say so on the page."""
    try:
        yield
    except FreeIMError as error:
        messages.error(request, f"Not done: {error.message}")


class MessageForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), max_length=2000)


def as_message(text: str) -> dict[str, Any]:
    """What an announcement or a broadcast from the admin carries (``text``, as the demo's chat sends)."""
    return {"text": text, "announcement": True}


def online_now(model_admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """Every online client with its nodes and connections; broadcast, and force clients offline."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        return _act(model_admin, request)
    cursor = request.GET.get("cursor", "")
    page = presence(request, lambda: _online_page(cursor), Page[ids.ClientId]([], ""))
    clients = sorted(page.items, key=str)
    count: int | None = presence(request, im.get_online_count, None)
    nodes: dict[ids.ClientId, dict[str, int]] = presence(request, lambda: im.get_client_nodes(clients), {})
    users = users_of_clients(clients)
    rows = [{"client_id": client, "user": users.get(client), "nodes": sorted(nodes.get(client, {}).items()),
             "connections": sum(nodes.get(client, {}).values())} for client in clients]
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, "title": "Online now",
               "count": count, "first": not cursor, "next": page.next, "rows": rows, "form": MessageForm(),
               "can_act": model_admin.has_change_permission(request)}
    return TemplateResponse(request, "admin/freeim_groups/online.html", context)


def _online_page(cursor: str) -> Page[ids.ClientId]:
    """The page of the online clients at ``cursor``; the first for a cursor the list did not give (an edited link)."""
    try:
        return im.get_client_page_by_online(cursor, ONLINE_PER_PAGE)
    except BadCursor:
        return im.get_client_page_by_online("", ONLINE_PER_PAGE)


def _act(model_admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    do, form = request.POST.get("do"), MessageForm(request.POST)
    with reporting(request):
        if do == "broadcast" and not form.is_valid():
            model_admin.message_user(request, "A broadcast needs a text.", messages.ERROR)
        elif do == "broadcast":
            im.send_broadcast_message(as_message(form.cleaned_data["text"]))
            model_admin.message_user(request, "Broadcast sent to every connection.", messages.SUCCESS)
        elif do == "force_offline":
            clients = ids.client_ids(request.POST.getlist("client"))
            for client in clients:
                im.force_offline(client)
            model_admin.message_user(request, f"{len(clients)} clients forced offline.", messages.SUCCESS)
    return HttpResponseRedirect(request.get_full_path())
