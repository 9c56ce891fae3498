"""Message history: every private and chan message kept, for the application to page through.

``FREEIM["HISTORY"]`` names the :class:`History` that keeps them: ``INSTALLED_APPS += ["freeim.history"]``
with ``FREEIM["HISTORY"] = "freeim.history.store.ModelHistory"`` keeps them in the database
(:mod:`.store`), and its REST API (:mod:`.urls`) serves them per conversation and per chan.
:mod:`freeim.im` hands each message to it before the nodes get it: a message the history cannot
keep is not sent, and the caller gets the error (:func:`database_errors`); a message kept and then
not sent (the store unreachable) is kept once when its send is retried with its key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Protocol

from django.db import DatabaseError, DataError
from django.utils.module_loading import import_string

from ..conf import conf
from ..exceptions import HistoryUnavailable, InvalidMessage
from ..ids import ClientId
from ..messaging.operations import SentChanMessage, SentMessage

__all__ = ["History", "SentChanMessage", "SentMessage", "configured", "database_errors"]


class History(Protocol):
    """Where messages are kept. Each call may come again with messages it has (a send retried with its key)."""

    def keep_messages(self, messages: list[SentMessage]) -> None: ...

    def keep_chan_message(self, message: SentChanMessage) -> None: ...

    def mark_read(self, reader: ClientId, message_ids: list[str]) -> None:
        """``reader`` read these private messages of its (ids of message frames, maybe unknown ones)."""

    def forget_chan(self, chan: str, history_to: str | None = None) -> None:
        """Drop ``chan``'s messages, or make them ``history_to``'s (:func:`freeim.im.forget_chan`)."""


def configured() -> History | None:
    """The history ``FREEIM["HISTORY"]`` names, if any."""
    path = conf.HISTORY
    return _instance(path) if path else None


@cache
def _instance(path: str) -> History:
    history: History = import_string(path)()
    return history


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """A database that refuses a message (PostgreSQL's ``jsonb`` has no NUL character) is
    :class:`InvalidMessage` (400), one that cannot be reached :class:`HistoryUnavailable` (503): the
    message was not sent, and a terminal knows whether to send it again."""
    try:
        yield
    except DataError as error:
        raise InvalidMessage(f"The history cannot keep this message: {str(error).strip()}") from error
    except DatabaseError as error:
        raise HistoryUnavailable() from error
