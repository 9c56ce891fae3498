"""The kept messages. A private message is kept once, with a small copy per participant (its receivers', and the
sender's one per receiver), so one client's conversations, unread counts and read marks are one index range
of its copies, and a message to 1,000 receivers stores its data once. A chan message is kept once."""

from __future__ import annotations

from django.db import models

from freeim import ids


class PrivateMessage(models.Model):
    """A private message: its id (as its frame carried it), sender, data and time."""

    message_id = models.CharField(max_length=16, primary_key=True)
    sender = models.CharField(max_length=ids.MAX_CLIENT_ID_LENGTH)
    data = models.JSONField(null=True)
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"{self.message_id} from {self.sender} at {self.sent_at:%Y-%m-%d %H:%M:%S}"


class Copy(models.Model):
    """One participant's copy of a private message: the receiver's (incoming) or the sender's (outgoing, one per
    receiver)."""

    owner = models.CharField(max_length=ids.MAX_CLIENT_ID_LENGTH)
    peer = models.CharField(max_length=ids.MAX_CLIENT_ID_LENGTH)
    outgoing = models.BooleanField()
    message = models.ForeignKey(PrivateMessage, on_delete=models.CASCADE, related_name="copies")
    #: When the receiver read it (on both copies); None: not yet.
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        indexes = [models.Index(fields=["owner", "peer", "-id"], name="freeim_history_conversation")]
        constraints = [models.UniqueConstraint(fields=["owner", "peer", "message"], name="freeim_history_once")]

    def __str__(self) -> str:
        return f"{self.owner}'s copy of {self.message_id}"

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
