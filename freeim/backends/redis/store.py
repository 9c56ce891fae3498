"""The cluster's store in Redis: tokens, presence and chans (:class:`~freeim.backends.contract.Store`).

Presence is kept per connection id (client -> its connections and their nodes, node -> its
connections and their clients), changed in steps of one slot each (:mod:`.presence`). Keys: :mod:`.keys`.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from ... import ids
from ...conf import conf
from ...exceptions import TooManyChans, TooManyConnections
from ...ids import ClientId
from ...protocol import parse_position, position
from ..contract import InboxRead, Letter, NodeLoad, Page, TokenRecord
from ..inboxes import META_LIFE, read_after
from .client import Performer, performed
from .keys import PARTITIONS, Keys
from .nodes import nodes_by_age
from .presence import Presence
from .steps import Cmd, Lua, Pipe, Steps, one

#: A node's connections read per round trip for a status report.
SCAN_CHUNK = 1000
#: Partitions a page of the online clients or chans looks into per round trip.
PARTITIONS_PER_ROUND = 16
#: Redis's scan cursors are unsigned 64-bit integers: it refuses a larger one.
SCAN_CURSORS = 2 ** 64
#: A page cursor: a partition and its scan cursor, in ASCII digits.
_CURSOR = re.compile(r"(\d{1,3})\.(\d{1,20})", re.ASCII).fullmatch
#: Items read per page where the whole list is asked for.
EVERYTHING_PAGE = 5000


def _page(method: str, key: Callable[[int], str], cursor: str, count: int) -> Steps[tuple[list[Any], str]]:
    """About ``count`` items of the partitions' keys (``key(partition)``) from ``cursor`` on, read with ``method``
    (``sscan``, ``zscan``), and the cursor after them: ``"<partition>.<its scan cursor>"``, ``""`` after the last.

    Each round trip scans the next :data:`PARTITIONS_PER_ROUND` partitions; what came after the first partition
    that did not end in it is read again on the next page."""
    part, scan = _partition_cursor(cursor)
    found: list[Any] = []
    while part < PARTITIONS and len(found) < count:
        parts = range(part, min(part + PARTITIONS_PER_ROUND, PARTITIONS))
        replies = yield Pipe(tuple(one(method, key(each), scan if each == part else 0, None, count - len(found))
                                   for each in parts))
        for each, (after, items) in zip(parts, replies, strict=True):
            found += items
            if int(after):
                return found, f"{each}.{after}"
            part, scan = each + 1, 0
            if len(found) >= count:
                break
    return found, f"{part}.0" if part < PARTITIONS else ""


def _partition_cursor(cursor: str) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    found = _CURSOR(cursor)
    if not found or int(found[1]) >= PARTITIONS or int(found[2]) >= SCAN_CURSORS:
        raise ValueError(f"not a cursor this list gave: {cursor!r}")
    return int(found[1]), int(found[2])


def _limits() -> tuple[str, int, int, int, int, int]:
    """What every append of one call shares: an epoch for an inbox made now, and the inbox limits."""
    age_ms = conf.INBOX_MAX_AGE * 1000
    return (secrets.token_hex(4), conf.INBOX_MAX_MESSAGES, conf.INBOX_MAX_BYTES, int(time.time() * 1000) - age_ms,
            age_ms, max(META_LIFE, conf.INBOX_MAX_AGE) * 1000)


def _store_message(keys: tuple[str, ...], letter: Letter, readers: str,
                   limits: tuple[str, int, int, int, int, int]) -> Lua:
    """The script that stores ``letter`` in the inbox of ``keys`` (its stream, its meta, where its readers
    are: a client's ``conns`` or a chan's ``nodes``, its ids), within ``limits`` (:func:`_limits`)."""
    return Lua("store_message", keys, (letter.id, letter.frame, *limits,
                                       "" if letter.receipt_to is None else letter.receipt_to, readers))


def _reads(inboxes: list[tuple[str, str, str]]) -> Steps[list[InboxRead]]:
    """What each inbox (its stream, its meta, the position asked) holds after the position: one round trip,
    bringing only the entries after it (``read_inbox``)."""
    if not inboxes:
        return []
    replies = yield Pipe(tuple(Lua("read_inbox", (stream, meta), _held(since)) for stream, meta, since in inboxes))
    oldest = int(time.time() * 1000) - conf.INBOX_MAX_AGE * 1000
    reads = []
    for (_stream, _meta, since), (epoch, top, entries) in zip(inboxes, replies, strict=True):
        kept = []
        for entry_id, flat in reversed(entries):  # oldest first
            if int(entry_id.split("-")[0]) >= oldest:
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                kept.append((int(fields["o"]), fields["i"], fields["p"], ids.client_id(fields["r"]) if fields["r"]
                             else None))
        reads.append(read_after(epoch or None, int(top), kept, since))
    return reads


def _held(since: str) -> tuple[str, int]:
    """The epoch and offset a reader asking after ``since`` holds (``("", 0)``: none, or ``"*"``)."""
    return parse_position(since) or ("", 0)


class RedisStore:
    """Tokens, presence and chans of many nodes and business processes sharing one Redis."""

    def __init__(self, keys: Keys, performer: Performer) -> None:
        self.keys = keys
        self.performer = performer
        self.presence = Presence(keys)

    # Tokens
    @performed
    def issue_token(self, token: str, record: TokenRecord, ttl: int) -> Steps[None]:
        yield self._token(token, record, ttl)

    @performed
    def issue_token_seeing_nodes(self, token: str, record: TokenRecord, ttl: int, within: float) -> Steps[list[str]]:
        _issued, fresh = yield Pipe((self._token(token, record, ttl),
                                     nodes_by_age(self.keys, "accepting", int(within * 1000))))
        return sorted(fresh)

    def _token(self, token: str, record: TokenRecord, ttl: int) -> Cmd:
        return one("set", self.keys.token(token), json.dumps(record), ttl)

    @performed
    def redeem_token(self, token: str) -> Steps[TokenRecord | None]:
        raw = yield one("getdel", self.keys.token(token))
        return cast(TokenRecord, json.loads(raw)) if raw else None  # written by issue_token

    # Presence
    @performed
    def add_connection(self, node: str, client_id: ClientId, conn: str, meta: str = "") -> Steps[bool]:
        answer = yield from self.presence.attach(node, client_id, conn, meta, conf.MAX_CONNECTIONS_PER_CLIENT)
        if answer == "full":
            raise TooManyConnections()
        return answer == "online"

    @performed
    def remove_connection(self, node: str, client_id: ClientId, conn: str, meta: str = "") -> Steps[bool]:
        client = str(client_id)
        results = yield from self.presence.detach(node, {client: [conn]}, {client: meta}, "own")
        return results[client] == "offline"

    @performed
    def locate(self, client_ids: list[ClientId]) -> Steps[dict[ClientId, dict[str, int]]]:
        if not client_ids:
            return {}
        found = yield Pipe(tuple(one("hvals", self.keys.client(c, "conns")) for c in client_ids))
        return {c: dict(Counter(nodes)) for c, nodes in zip(client_ids, found, strict=True) if nodes}

    def _each_partition(self, method: str, key: Callable[[int], str], *args: Any) -> Steps[list[Any]]:
        """``method`` (with ``args``) on the key of every partition, in one pipeline: the replies, in partition
        order."""
        replies: list[Any] = yield Pipe(tuple(one(method, key(part), *args) for part in range(PARTITIONS)))
        return replies

    @performed
    def online_clients(self) -> Steps[list[ClientId]]:
        return [ids.client_id(c) for c in (yield from self._everything("sscan", self._online))]

    @performed
    def online_page(self, cursor: str, count: int) -> Steps[Page[ClientId]]:
        members, after = yield from _page("sscan", self._online, cursor, count)
        return Page([ids.client_id(c) for c in members], after)

    def _online(self, part: int) -> str:
        return self.keys.clients(part, "online")

    def _everything(self, method: str, key: Callable[[int], str]) -> Steps[list[Any]]:
        """Every item of every partition's key, read a page at a time (no command holds Redis for a whole key)."""
        found: list[Any] = []
        cursor = ""
        while True:
            items, cursor = yield from _page(method, key, cursor, EVERYTHING_PAGE)
            found += items
            if not cursor:
                return found

    @performed
    def online_count(self) -> Steps[int]:
        return sum((yield from self._each_partition("scard", self._online)))

    @performed
    def node_loads(self, nodes: list[str]) -> Steps[dict[str, NodeLoad]]:
        """Each node's ``conns`` hash: its length, and its distinct clients read with ``HSCAN`` a chunk at a time
        (one pipeline a round for all nodes), so no single command holds Redis for a whole node."""
        if not nodes:
            return {}
        conns = {node: self.keys.node(node, "conns") for node in nodes}
        lengths = yield Pipe(tuple(one("hlen", key) for key in conns.values()))
        clients: dict[str, set[str]] = {node: set() for node in nodes}
        cursors = {node: 0 for node in nodes}
        while cursors:
            scanning = list(cursors)
            replies = yield Pipe(tuple(one("hscan", conns[node], cursors[node], None, SCAN_CHUNK) for node in scanning))
            for node, (cursor, entries) in zip(scanning, replies, strict=True):
                clients[node].update(entries.values())
                if int(cursor):
                    cursors[node] = cursor
                else:
                    del cursors[node]
        return {node: NodeLoad(int(length), len(clients[node])) for node, length in zip(nodes, lengths, strict=True)}

    # Inboxes
    @performed
    def store_messages(self, letters: list[Letter], locate: list[ClientId]
                       ) -> Steps[tuple[list[tuple[str, dict[str, int]]], dict[ClientId, dict[str, int]]]]:
        keys = self.keys
        limits = _limits()
        steps: list[Lua | Cmd] = [
            _store_message(keys.client_keys(letter.client, "inbox", "inbox-meta", "conns", "inbox-ids"),
                           letter, "conns", limits)
            for letter in letters]
        steps += [one("hvals", keys.client(client, "conns")) for client in locate]
        if not steps:
            return [], {}
        replies = yield Pipe(tuple(steps), durable=bool(letters))
        stored = [(position(epoch, offset), dict(Counter(nodes)))
                  for epoch, offset, *nodes in replies[:len(letters)]]
        located = {client: dict(Counter(nodes)) for client, nodes in zip(locate, replies[len(letters):], strict=True)
                   if nodes}
        return stored, located

    @performed
    def store_chan_message(self, chan: str, message_id: str, frame: str) -> Steps[tuple[str, list[str]]]:
        keys = self.keys
        [(epoch, offset, *nodes)] = yield Pipe((_store_message(
            (keys.chan(chan, "stream"), keys.chan(chan, "stream-meta"), keys.chan(chan, "nodes"),
             keys.chan(chan, "stream-ids")), Letter(chan, message_id, frame), "nodes", _limits()),), durable=True)
        return position(epoch, offset), sorted(nodes)

    @performed
    def drop_chan_stream(self, chan: str) -> Steps[None]:
        keys = self.keys  # one hash tag: one slot
        yield one("delete", keys.chan(chan, "stream"), keys.chan(chan, "stream-meta"), keys.chan(chan, "stream-ids"))

    @performed
    def read_chans(self, since: dict[str, str]) -> Steps[dict[str, InboxRead]]:
        keys = self.keys
        reads = yield from _reads([(keys.chan(chan, "stream"), keys.chan(chan, "stream-meta"), at)
                                   for chan, at in since.items()])
        return dict(zip(since, reads, strict=True))

    @performed
    def receipts_wanted(self, client_id: ClientId, message_ids: list[str]) -> Steps[list[tuple[str, ClientId]]]:
        if not message_ids:
            return []
        kept = yield one("hmget", self.keys.client(client_id, "inbox-ids"), message_ids)
        # Each value is "<offset> <who wants a receipt>", the second part empty when nobody does.
        wants = {message_id: value.partition(" ")[2] for message_id, value in zip(message_ids, kept, strict=True)
                 if value}
        return [(message_id, ids.client_id(sender)) for message_id, sender in wants.items() if sender]

    @performed
    def read_inbox(self, client_id: ClientId, since: str) -> Steps[InboxRead]:
        keys = self.keys
        [read] = yield from _reads([(keys.client(client_id, "inbox"), keys.client(client_id, "inbox-meta"), since)])
        return read

    # Chans
    @performed
    def join(self, client_id: ClientId, chans: list[str]) -> Steps[bool]:
        joined = yield from self.presence.join(client_id, chans, conf.MAX_CHANS_PER_CLIENT)
        if joined < 0:
            raise TooManyChans()
        return bool(joined)

    @performed
    def leave(self, client_id: ClientId, chans: list[str]) -> Steps[None]:
        yield from self.presence.leave([client_id], chans)

    @performed
    def chan_members(self, chan: str) -> Steps[list[ClientId]]:
        return [ids.client_id(c) for c in (yield from self.presence.members(chan))]

    @performed
    def clear_chan(self, chan: str) -> Steps[list[ClientId]]:
        members = yield from self.presence.members(chan)
        if members:
            yield from self.presence.leave(members, [chan], clearing=True)
        return [ids.client_id(c) for c in members]

    @performed
    def chan_list(self) -> Steps[list[tuple[str, int]]]:
        return sorted((chan, int(score)) for chan, score in (yield from self._everything("zscan", self.keys.chans)))

    @performed
    def chan_page(self, cursor: str, count: int) -> Steps[Page[tuple[str, int]]]:
        chans, after = yield from _page("zscan", self.keys.chans, cursor, count)
        return Page([(chan, int(score)) for chan, score in chans], after)

    @performed
    def chan_count(self) -> Steps[int]:
        return sum((yield from self._each_partition("zcard", self.keys.chans)))

    @performed
    def client_chans(self, client_id: ClientId) -> Steps[list[str]]:
        return sorted((yield one("smembers", self.keys.client(client_id, "chans"))))

    @performed
    def clients_chans(self, client_ids: list[ClientId]) -> Steps[dict[ClientId, list[str]]]:
        found = yield Pipe(tuple(one("smembers", self.keys.client(c, "chans")) for c in client_ids))
        return {c: sorted(chans) for c, chans in zip(client_ids, found, strict=True)}

    @performed
    def chan_online(self, chan: str) -> Steps[int]:
        return int((yield one("zscore", self.keys.chans_of(chan), chan)) or 0)

    @performed
    def chan_nodes(self, chan: str) -> Steps[list[str]]:
        return sorted((yield one("hkeys", self.keys.chan(chan, "nodes"))))
