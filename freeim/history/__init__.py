"""Message history: every private and chan message kept, for the application to page through.

``FREEIM["HISTORY"]`` names the :class:`History` that keeps them: ``INSTALLED_APPS += ["freeim.history"]``
with ``FREEIM["HISTORY"] = "freeim.history.store.ModelHistory"`` keeps them in the database
(:mod:`.store`), and its REST API (:mod:`.urls`) serves them per conversation and per chan.
:mod:`freeim.im` hands each message to it once the nodes have it, so a history that fails never
holds a message back; the caller gets its error.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple, Protocol

from django.utils.module_loading import import_string

from ..conf import conf
from ..ids import ClientId
from ..messaging.operations import SentMessage

__all__ = ["History", "SentChanMessage", "SentMessage", "configured"]


class SentChanMessage(NamedTuple):
    """One chan message as sent."""

    message_id: str
    sender: ClientId
    chan: str
    message: Any


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
