"""The admin's live-ops page: every node with its state, readiness, last heartbeat, loop lag, sockets and clients,
and the events backlog, in the words of ``freeim_status`` (:mod:`freeim.status`), kept up to date without a
reload by a few lines of JavaScript (``freeim_groups/liveops.js``) that poll :func:`live_ops_status`.

A refresh reads a few keys: the nodes' heartbeats and health reports, the draining set, two counts and the events
backlog; never the connections (each node's sockets and clients are its own count, from its report). When the store
cannot be reached the page says so and keeps polling. Viewing needs the view permission on chat groups, as "Online
now" does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from freeim.backends import get_backend, run_blocking
from freeim.exceptions import FreeIMError
from freeim.status import (
    GROUP_HEADINGS,
    NO_GROUP,
    NODE_HEADINGS,
    as_json,
    events_line,
    group_cells,
    node_cells,
    not_ready,
    read_status,
    summary,
)

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

#: Milliseconds between two refreshes of the page.
POLL_MS = 2000


def live_ops(model_admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """The page, with the deployment as it is now; its script keeps it so."""
    _check(model_admin, request)
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, "title": "Live ops",
               "view": _view(), "node_headings": [*NODE_HEADINGS, "why not ready"], "group_headings": GROUP_HEADINGS,
               "source": reverse(f"{model_admin.admin_site.name}:freeim_groups_liveops_status"),
               "poll_ms": POLL_MS, "poll_seconds": POLL_MS / 1000}
    return TemplateResponse(request, "admin/freeim_groups/liveops.html", context)


def live_ops_status(model_admin: ModelAdmin[Any], request: HttpRequest) -> JsonResponse:
    """What the page shows, for its script: 200, or 503 with ``error`` when the store cannot be reached."""
    _check(model_admin, request)
    view = _view()
    return JsonResponse(view, status=503 if view["error"] else 200)


def _check(model_admin: ModelAdmin[Any], request: HttpRequest) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def _view() -> dict[str, Any]:
    """The page's text: a summary, a row per node and per consumer group (each keyed by its name and marked with
    its state), and the status as ``freeim_status --json`` prints it; or the error that kept it from being read."""
    try:
        status = run_blocking(read_status(get_backend().blocking(), loads=False))
    except FreeIMError as error:
        return {"error": f"{error.message} Trying again every {POLL_MS / 1000:g} s."}
    groups = status.events.groups if status.events is not None else []
    return {
        "error": None,
        "summary": summary(status),
        "nodes": [{"key": node.name, "state": node.state, "cells": [*node_cells(node), not_ready(node)]}
                  for node in status.nodes],
        "events": events_line(status.events),
        "groups": [{"key": group.name, "state": "", "cells": group_cells(group)} for group in groups],
        "no_groups": NO_GROUP if status.events is not None and not groups else "",
        "status": as_json(status),
    }
