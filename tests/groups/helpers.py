"""Helpers of the freeim.groups tests.

Socket tests run their async part under ``async_to_sync`` from a sync test (see
tests/demo/test_chat.py): the ORM work then runs back on the test's thread, with its
database connection. They use ``transaction=True``, so changes commit and the
groups' after-commit effects run, as in production.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User

from freeim.groups.models import Group, Membership
from freeim.testing import FreeIMCommunicator
from tests.frames import unpositioned

QUIET = 0.2

#: For ``manage.py shell -c`` on a server's database (end-to-end tests): a group ``$GROUP``
#: whose members are the comma-separated client ids in ``$MEMBERS``.
MAKE_GROUP = """
import os
from freeim.groups.models import Group, Membership
from tests.frames import unpositioned
group = Group.objects.create(slug=os.environ["GROUP"], title=os.environ["GROUP"])
for client in os.environ["MEMBERS"].split(","):
    Membership.objects.create(group=group, client_id=client)
"""


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run an async scenario from a sync test (see the module docstring)."""
    return async_to_sync(scenario)()


def db(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as an awaitable, on the test's thread (thread-sensitive)."""
    return sync_to_async(function)


def make_group(slug: str, *members: User | str | int, **fields: Any) -> Group:
    """A group with members (users, or client ids of clients that are not users)."""
    group = Group.objects.create(slug=slug, title=fields.pop("title", slug.title()), **fields)
    for member in members:
        add(group, member)
    return group


def add(group: Group, member: User | str | int, role: str = "member") -> Membership:
    if isinstance(member, User):
        return Membership.objects.create(group=group, user=member, role=role)
    return Membership.objects.create(group=group, client_id=member, role=role)


async def chan_frame(terminal: FreeIMCommunicator) -> dict[str, Any]:
    frame = await terminal.receive_frame()
    assert frame["type"] == "chan", frame
    return unpositioned(frame)


async def left(terminal: FreeIMCommunicator, chan: str) -> None:
    """The terminal is told it was taken out of ``chan``."""
    assert await terminal.receive_frame() == {"type": "left", "chan": chan}


async def silent(*terminals: FreeIMCommunicator) -> None:
    for terminal in terminals:
        assert await terminal.receive_nothing(timeout=QUIET), "a frame arrived where none should"
