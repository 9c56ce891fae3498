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

from . import ids
from .ids import ClientId

logger = logging.getLogger(__name__)
ChanProvider = Callable[[ClientId], Iterable[str]]
ManagedTest = Callable[[str], bool]
_providers: list[ChanProvider] = []
_managed: list[ManagedTest] = []


def register(provider: ChanProvider) -> ChanProvider:
    """Add a provider (usable as a decorator); registering one twice has no effect."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def unregister(provider: ChanProvider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def has_providers() -> bool:
    return bool(_providers)


def chans_for(client_id: ClientId) -> list[str]:
    """The chans every provider gives for ``client_id``, valid and without duplicates.

    Blocking (providers may query the database): the node calls it in a worker
    thread. A provider that fails, or returns an invalid chan name, is logged and
    skipped: the client still connects, with the chans the others gave.
    """
    chans: dict[str, None] = {}
    for provider in list(_providers):
        try:
            for name in provider(client_id):
                chans[ids.chan(name)] = None
        except Exception:
            logger.exception("freeim auto-join provider %r failed for client %r", provider, client_id)
    return list(chans)


def manage(test: ManagedTest) -> ManagedTest:
    """Add a test telling whether the server manages a chan's members (usable as a decorator).

    Terminals cannot join or leave a managed chan through the REST API (403,
    ``managed_chan``): its members are whom the providers say. ``freeim.groups``
    manages its groups' chans, so no one joins a group's chan by guessing its name.
    """
    if test not in _managed:
        _managed.append(test)
    return test


def unmanage(test: ManagedTest) -> None:
    if test in _managed:
        _managed.remove(test)


def is_managed(chan: str) -> bool:
    """Whether any registered test says the server manages ``chan``'s members (blocking)."""
    return any(test(chan) for test in list(_managed))
