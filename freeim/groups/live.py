"""Membership and group changes take effect on online clients at once.

Auto-join covers a client that comes online; this covers the ones already online
when the data changes: an added member joins the group's chan, a removed one
leaves it, a deactivated or deleted group's chan is cleared, a created, activated
(or renamed) group's chan is taken over: whoever is in it and is not a member
(joined by name before the group existed) is evicted, and its online members
join it. A group's chan keeps no past but its own: a new name (created, renamed)
forgets what was said under it before, a renamed group's history moves with it,
and a deleted or renamed group's old name keeps nothing (:func:`freeim.im.forget_chan`)
for whoever takes it next. Each effect runs after the transaction
commits, so a rolled-back change never reaches a socket; a failure to reach the
store is logged, never raised into the caller whose data was already saved.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save

from freeim import ids, im
from freeim.exceptions import ClientOffline, FreeIMError

from .models import Group, Membership
from .signals import group_member_added, group_member_removed

logger = logging.getLogger("freeim.groups")


def connect() -> None:
    """Wire the model signals (called once, from the app's ``ready``)."""
    post_save.connect(membership_saved, sender=Membership, dispatch_uid="freeim.groups.membership_saved")
    post_delete.connect(membership_deleted, sender=Membership, dispatch_uid="freeim.groups.membership_deleted")
    post_save.connect(group_saved, sender=Group, dispatch_uid="freeim.groups.group_saved")
    post_delete.connect(group_deleted, sender=Group, dispatch_uid="freeim.groups.group_deleted")


def after_commit(effect: Callable[[], None]) -> None:
    # robust: one failing effect (or signal receiver) must not stop the others queued after it.
    transaction.on_commit(effect, robust=True)


@contextlib.contextmanager
def logged(action: str, what: object) -> Iterator[None]:
    try:
        yield
    except FreeIMError as error:
        logger.warning("freeim groups: could not %s %s: %s", action, what, error)


def join_online(client_ids: list[Any], chan: str) -> None:
    """Join the online ones of ``client_ids`` to ``chan`` (one presence lookup for all)."""
    online = im.has_online(client_ids)
    for client, is_online in online.items():
        if is_online:
            with contextlib.suppress(ClientOffline):  # it went offline meanwhile: auto-join covers its return
                im.join_chan(client, chan)


def take_over(slug: str, group_id: int) -> None:
    """Make the group's chan hold its members only: evict the others, join the online members not in it.

    The chan is read before the memberships: a member added meanwhile either joined before
    that read (and the memberships read, later, sees it) or joins after it (and is not in the
    list to evict). Members already in the chan are neither evicted nor joined again, so they
    never flap out and back in.
    """
    present = im.get_chan_client_list(slug)
    members = ids.client_ids(Membership.objects.filter(group_id=group_id).values_list("client_id", flat=True))
    for client in set(present).difference(members):
        with logged("evict", (client, slug)):
            im.leave_chan(client, slug)
    absent = [client for client in members if client not in present]
    if absent:
        join_online(absent, slug)


def added(membership: Membership, group: Group) -> None:
    client = membership.client

    def effect() -> None:
        if group.is_active:
            with logged("join", (client, group.slug)):
                join_online([client], group.slug)
        group_member_added.send(sender=Membership, membership=membership, group=group, client_id=client)

    after_commit(effect)


def removed(membership: Membership, group: Group, client_id: str, leave: bool = True) -> None:
    client = ids.client_id(client_id)

    def effect() -> None:
        if leave:
            with logged("leave", (client, group.slug)):
                im.leave_chan(client, group.slug)
        group_member_removed.send(sender=Membership, membership=membership, group=group, client_id=client)

    after_commit(effect)


def membership_saved(instance: Membership, created: bool, raw: bool = False, **kwargs: Any) -> None:
    before = instance.previously
    if raw or (before is not None and before == instance.tracked_values()):
        return  # loaddata, or only its role changed
    if before is not None:  # moved to another group or client: it left the old one
        removed(instance, Group.objects.get(pk=before["group_id"]), before["client_id"])
    added(instance, instance.group)


def membership_deleted(instance: Membership, origin: Any = None, **kwargs: Any) -> None:
    if isinstance(origin, Group) and origin.pk == instance.group_id:
        removed(instance, origin, instance.client_id, leave=False)  # the group's chan is cleared as a whole
        return
    by_group = isinstance(origin, QuerySet) and origin.model is Group
    removed(instance, instance.group, instance.client_id, leave=not by_group)


def group_saved(instance: Group, created: bool, raw: bool = False, **kwargs: Any) -> None:
    before, slug, active = instance.previously, instance.slug, instance.is_active
    if raw or (not created and before == instance.tracked_values()):
        return  # loaddata, or a title or description change: no chan changes
    # The chan to clear: the old one if it was live; with the old state unknown (an instance not
    # loaded from the database), this one if the group is inactive now.
    stale = before["slug"] if before and before["is_active"] else (None if active else slug)
    # A new name: what was said under it before (a plain chan's) is not the group's; the group's history
    # moves with it, and the old name keeps nothing for whoever takes it next.
    renamed_from = before["slug"] if before and before["slug"] != slug else None
    new_name = created or renamed_from is not None

    def effect() -> None:
        if new_name:
            with logged("forget the past of", slug):
                im.forget_chan(slug)
        if renamed_from is not None:
            with logged("move the history of", renamed_from):
                im.forget_chan(renamed_from, history_to=slug)
        if stale is not None:
            with logged("clear", stale):
                im.clear_chan_client(stale)
        if active:
            with logged("take over", slug):
                take_over(slug, instance.pk)

    after_commit(effect)


def group_deleted(instance: Group, **kwargs: Any) -> None:
    slug = instance.slug

    def effect() -> None:
        with logged("clear", slug):
            im.clear_chan_client(slug)
        with logged("forget", slug):
            im.forget_chan(slug)  # its name may go to a plain chan or another group next

    after_commit(effect)
