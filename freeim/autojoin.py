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

    @autojoin.manage_many
    def team_chans_among(chans):
        return {chan for chan in chans if chan.startswith("team-")}
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, Generic, TypeVar

from . import ids
from .ids import ClientId

logger = logging.getLogger("freeim.autojoin")
ChanProvider = Callable[[ClientId], Iterable[str]]
ManagedTest = Callable[[str], bool]
ManagedBatchTest = Callable[[list[str]], Collection[str]]
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
#: leave a managed chan through the REST API (403, ``managed_chan``), nor see it or its
#: members unless they are in it: its members are whom the providers say. ``freeim.groups``
#: manages its groups' chans, so no one joins a group's chan by guessing its name.
#: A single test (``manage``) answers for one chan; a batched one (``manage_many``) gets
#: a list of chans and returns the managed ones, so listing every chan costs one call
#: (one query) per batched test rather than one per chan.
_managed: _Hooks[ManagedTest] = _Hooks()
_managed_many: _Hooks[ManagedBatchTest] = _Hooks()
register, unregister = _providers.add, _providers.discard
manage, unmanage = _managed.add, _managed.discard
manage_many, unmanage_many = _managed_many.add, _managed_many.discard


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """No provider and no managed-chan test while inside: for tests without database access, where the ones
    that read your data (``freeim.groups``') would fail on each connect. Those registered inside are
    dropped on exit; the ones before come back."""
    saved = [(hooks, hooks.hooks) for hooks in (_providers, _managed, _managed_many)]
    for hooks, _ in saved:
        hooks.hooks = []
    try:
        yield
    finally:
        for hooks, before in saved:
            hooks.hooks = before


def has_managers() -> bool:
    """Whether any test of managed chans is registered."""
    return bool(_managed_many.hooks or _managed.hooks)


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


def managed_among(chans: Iterable[str]) -> set[str]:
    """The chans among ``chans`` that a registered test says the server manages (blocking).

    Each batched test is asked once, about the chans no earlier test claimed; each single
    test then once per chan still unclaimed. A batched test's answer counts only for the
    chans it was asked about.
    """
    managed: set[str] = set()
    unclaimed = list(dict.fromkeys(chans))
    for batch_test in list(_managed_many.hooks):
        if not unclaimed:
            break
        managed.update(set(batch_test(unclaimed)).intersection(unclaimed))
        unclaimed = [chan for chan in unclaimed if chan not in managed]
    for test in list(_managed.hooks):
        managed.update(chan for chan in unclaimed if chan not in managed and test(chan))
    return managed


def is_managed(chan: str) -> bool:
    """Whether any registered test, single or batched, says the server manages ``chan``'s members (blocking)."""
    return bool(managed_among([chan]))
