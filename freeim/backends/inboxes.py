"""What every backend's inboxes share: how a read after a position is answered (pure)."""

from __future__ import annotations

from ..ids import ClientId
from ..protocol import FROM_THE_START, parse_position, position
from .contract import InboxRead, Kept

#: How long an inbox's epoch and count outlive its last message, at least: a terminal that comes back
#: within it learns that nothing was lost rather than getting a gap it did not need.
META_LIFE = 30 * 86400


#: A message as an inbox keeps it: ``(offset, message id, frame, receipt to)``.
Entry = tuple[int, str, str, ClientId | None]


def read_after(epoch: str | None, top: int, kept: list[Entry], since: str) -> InboxRead:
    """The answer to a read after ``since`` of an inbox of ``epoch`` whose newest offset is ``top`` and which
    keeps ``kept`` (oldest first, none too old); ``epoch`` None: there is no inbox.

    A gap when the terminal's epoch is not the inbox's (the inbox was lost and made again), when the
    inbox no longer keeps the message right after its position (trimmed), or when the position is past
    the newest (a Redis restored from an older snapshot numbers new messages from below it again).
    """
    def every(after: int) -> list[Kept]:
        return [Kept(position(epoch, offset), frame, message_id, receipt_to)
                for offset, message_id, frame, receipt_to in kept if offset > after] if epoch else []

    if since == FROM_THE_START:
        return InboxRead(False, every(0))
    asked = parse_position(since)
    if asked is None or epoch is None or asked[0] != epoch:
        return InboxRead(True, every(0))
    after = asked[1]
    if after > top:
        return InboxRead(True, every(0))
    if after == top:
        return InboxRead(False, [])
    first_kept = kept[0][0] if kept else top + 1
    return InboxRead(first_kept > after + 1, every(after))
