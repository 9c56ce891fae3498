"""The kept messages: a private message once per participant, so each one's conversations are one index
range; a chan message once."""

from __future__ import annotations

from django.db import models

from freeim import ids


class PrivateMessage(models.Model):
    """One participant's copy of a private message: the receiver's (incoming) or the sender's (outgoing,
    one per receiver), so a conversation, its unread count and its read state are one owner's rows."""

    owner = models.CharField(max_length=ids.MAX_CLIENT_ID_LENGTH)
    peer = models.CharField(max_length=ids.MAX_CLIENT_ID_LENGTH)
    outgoing = models.BooleanField()
    message_id = models.CharField(max_length=16)
    data = models.JSONField(null=True)
    sent_at = models.DateTimeField()
    #: When the receiver read it (on both copies); None: not yet.
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["owner", "peer", "-id"], name="freeim_history_conversation")]
        constraints = [models.UniqueConstraint(fields=["owner", "peer", "message_id"], name="freeim_history_once")]

    def __str__(self) -> str:
        sender, receiver = (self.owner, self.peer) if self.outgoing else (self.peer, self.owner)
        return f"{sender} to {receiver} at {self.sent_at:%Y-%m-%d %H:%M:%S}"

    @property
    def sender(self) -> ids.ClientId:
        return ids.client_id(self.owner if self.outgoing else self.peer)

    @property
    def receiver(self) -> ids.ClientId:
        return ids.client_id(self.peer if self.outgoing else self.owner)


class ChanMessage(models.Model):
    """A chan message (a group's too: its chan is the group's slug)."""

    chan = models.CharField(max_length=100)
    sender = models.CharField(max_length=ids.MAX_CLIENT_ID_LENGTH)
    message_id = models.CharField(max_length=16)
    data = models.JSONField(null=True)
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["chan", "-id"], name="freeim_history_chan")]
        constraints = [models.UniqueConstraint(fields=["chan", "message_id"], name="freeim_history_chan_once")]

    def __str__(self) -> str:
        return f"{self.sender} in {self.chan} at {self.sent_at:%Y-%m-%d %H:%M:%S}"
