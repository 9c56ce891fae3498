"""Who may call what in the REST API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.permissions import BasePermission

from .. import autojoin, im
from ..auth import client_id_of
from ..exceptions import NotAChanMember


def caller_chans(request: Any) -> list[str]:
    """The chans the caller is in."""
    return im.get_chan_list_by_client_id(client_id_of(request.user))


def in_chan(request: Any, chan: str) -> bool:
    """Whether the caller is a member of ``chan``."""
    return chan in caller_chans(request)


def hidden_chans(request: Any, chans: Iterable[str]) -> set[str]:
    """The chans among ``chans`` the caller may not see: the managed ones it is not in (none for staff).

    One batched managed test for them all (:func:`freeim.autojoin.managed_among`), and one store
    read of the caller's chans only when some are managed.
    """
    if request.user.is_staff:
        return set()
    managed = autojoin.managed_among(chans)
    if not managed:
        return set()
    return managed.difference(caller_chans(request))


class IsChanMember(BasePermission):
    """The caller is a member of the chan named in the URL; else 403 ``not_a_member``."""

    def has_permission(self, request: Any, view: Any) -> bool:
        if in_chan(request, view.kwargs["chan"]):
            return True
        raise NotAChanMember("Only members of the chan may post to it.")


class MaySeeChan(BasePermission):
    """Anyone may see an ordinary chan; a managed one (:mod:`freeim.autojoin`) only its members and staff.

    A refusal is 403 ``not_a_member``, so a managed chan's members are not shown to whoever guesses its name.
    """

    def has_permission(self, request: Any, view: Any) -> bool:
        chan = view.kwargs["chan"]
        if request.user.is_staff or not autojoin.is_managed(chan) or in_chan(request, chan):
            return True
        raise NotAChanMember()
