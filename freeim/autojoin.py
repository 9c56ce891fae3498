"""Chans a client joins by itself when it comes online.

A provider is a plain callable ``provider(client_id) -> Iterable[str]`` that
may query the database (``freeim.groups`` registers one that returns the
client's active groups). The node asks every registered provider when a client
comes online (its first connection anywhere) and joins the chans before the
socket is accepted, so no frame sent to those chans after the terminal sees
the socket open can miss it, and no business code calls ``join_chan`` for them.

    from freeim import autojoin

    @autojoin.register
    def team_chans(client_id):
        return [f"team-{t}" for t in Team.objects.filter(members=client_id).values_list("pk", flat=True)]

    @autojoin.manage
    def is_team_chan(chan):
        return chan.startswith("team-")
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from . import ids
from .ids import ClientId

logger = logging.getLogger(__name__)
ChanProvider = Callable[[ClientId], Iterable[str]]
ManagedTest = Callable[[str], bool]
Hook = TypeVar("Hook", bound=Callable[..., Any])


class _Hooks(Generic[Hook]):
    """Registered callables, each once, in the order they came."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []

    def add(self, hook: Hook) -> Hook:
        """Register ``hook`` (usable as a decorator); registering it twice has no effect."""
        if hook not in self.hooks:
            self.hooks.append(hook)
        return hook

    def discard(self, hook: Hook) -> None:
        if hook in self.hooks:
            self.hooks.remove(hook)


_providers: _Hooks[ChanProvider] = _Hooks()
#: Tests telling whether the server manages a chan's members. Terminals cannot join or
#: leave a managed chan through the REST API (403, ``managed_chan``): its members are whom
#: the providers say. ``freeim.groups`` manages its groups' chans, so no one joins a
#: group's chan by guessing its name.
_managed: _Hooks[ManagedTest] = _Hooks()
register, unregister = _providers.add, _providers.discard
manage, unmanage = _managed.add, _managed.discard


def has_providers() -> bool:
    return bool(_providers.hooks)


def chans_for(client_id: ClientId) -> list[str]:
    """The chans every provider gives for ``client_id``, valid and without duplicates.

    Blocking (providers may query the database): the node calls it in a worker
    thread. A provider that fails, or returns an invalid chan name, is logged and
    skipped: the client still connects, with the chans the others gave.
    """
    chans: dict[str, None] = {}
    for provider in list(_providers.hooks):
        try:
            for name in provider(client_id):
                chans[ids.chan(name)] = None
        except Exception:
            logger.exception("freeim auto-join provider %r failed for client %r", provider, client_id)
    return list(chans)


def is_managed(chan: str) -> bool:
    """Whether any registered test says the server manages ``chan``'s members (blocking)."""
    return any(test(chan) for test in list(_managed.hooks))
