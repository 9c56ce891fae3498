"""The database history: ``FREEIM["HISTORY"] = "freeim.history.store.ModelHistory"`` with the app installed."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from freeim.ids import ClientId
from freeim.protocol import as_terminals_read

from . import SentChanMessage, SentMessage
from .models import ChanMessage, Copy, PrivateMessage


class ModelHistory:
    """Keeps messages in the models of :mod:`.models`: one ``INSERT`` per table and call, a message kept already
    (a retried send) left as it is."""

    def keep_messages(self, messages: list[SentMessage]) -> None:
        now = timezone.now()
        copies = []
        for sent in messages:
            sender = str(sent.sender)
            for receiver in map(str, sent.receivers):
                copies.append(Copy(owner=receiver, peer=sender, outgoing=False, message_id=sent.message_id,
                                   read_at=now if receiver == sender else None))  # one's own note is read
                if receiver != sender:  # a note to oneself is one copy
                    copies.append(Copy(owner=sender, peer=receiver, outgoing=True, message_id=sent.message_id))
        kept = [PrivateMessage(message_id=sent.message_id, sender=str(sent.sender),
                               data=as_terminals_read(sent.message), sent_at=now) for sent in messages]
        with transaction.atomic():  # a refused insert rolls back alone, not the caller's transaction
            PrivateMessage.objects.bulk_create(kept, ignore_conflicts=True)
            Copy.objects.bulk_create(copies, ignore_conflicts=True)

    def keep_chan_message(self, message: SentChanMessage) -> None:
        with transaction.atomic():
            ChanMessage.objects.bulk_create([ChanMessage(chan=message.chan, sender=str(message.sender),
                                                         message_id=message.message_id,
                                                         data=as_terminals_read(message.message),
                                                         sent_at=timezone.now())], ignore_conflicts=True)

    def forget_chan(self, chan: str, history_to: str | None = None) -> None:
        kept = ChanMessage.objects.filter(chan=chan)
        if history_to is None:
            kept.delete()
        else:
            kept.update(chan=history_to)

    def mark_read(self, reader: ClientId, message_ids: list[str]) -> None:
        """Both copies of each message ``reader`` received: its own, and the sender's copy addressed to it."""
        me = str(reader)
        Copy.objects.filter(Q(owner=me, outgoing=False) | Q(peer=me, outgoing=True), message_id__in=message_ids,
                            read_at=None).update(read_at=timezone.now())
