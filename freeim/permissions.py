"""Who may call what in the REST API."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from . import im
from .auth import client_id_of


class IsChanMember(BasePermission):
    """The caller is a member of the chan named in the URL."""

    message = "Only members of the chan may post to it."

    def has_permission(self, request: Any, view: Any) -> bool:
        return view.kwargs["chan"] in im.get_chan_list_by_client_id(client_id_of(request.user))
