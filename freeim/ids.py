"""Client ids and chan names: validation and the one canonical form.

Client ids are ints or strings. A string of decimal digits is the same client
as that int (``"42"`` == ``42``), so ids survive a URL path, a JSON body or a
Redis round trip unchanged.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from functools import cache
from typing import cast

from django.conf import settings

from .conf import conf
from .exceptions import InvalidChan, InvalidClientId, InvalidMessage

ClientId = int | str

#: The most any deployment allows (``freeim.groups`` stores client ids in a column this wide);
#: ``FREEIM["MAX_CLIENT_ID_LENGTH"]`` is what this one enforces.
MAX_CLIENT_ID_LENGTH = 128
# \Z, not $: "$" also matches before a final newline, and "team\n" would be a chan beside "team".
CHAN_PATTERN = re.compile(r"^[A-Za-z0-9._:@-]{1,100}\Z")
_DECIMAL = re.compile(r"^(?:-?[1-9][0-9]*|0)\Z")
#: Longest idempotency key a sender may give a message.
MAX_KEY_LENGTH = 64


def client_id(value: object) -> ClientId:
    """Return the canonical form of a client id or raise :class:`InvalidClientId`.

    ``FREEIM["MAX_CLIENT_ID_LENGTH"]`` bounds the characters of a string and of an int written
    in decimal (its sign included), so every id has one text form that fits it, and an int and
    the string of its digits are one client whatever their length (they share a Redis key). An
    int is measured against powers of ten, never turned into a string: Python refuses that past
    4,300 digits (ValueError), and it costs quadratic time before.
    """
    limit = conf.MAX_CLIENT_ID_LENGTH
    if isinstance(value, int) and not isinstance(value, bool):
        if not -_ten_to_the(limit - 1) < value < _ten_to_the(limit):
            raise _too_long(limit)
        return value
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise _too_long(limit)
    if _DECIMAL.match(value):
        return int(value)
    return value


@cache
def _ten_to_the(digits: int) -> int:
    """The smallest int with ``digits + 1`` digits."""
    return cast(int, 10**digits)  # an int for a non-negative exponent; typeshed cannot know that


def _too_long(limit: int) -> InvalidClientId:
    return InvalidClientId(f"Client ids are ints or non-empty strings of printable characters, at most {limit} "
                           "characters long (an int's sign counts).")


def client_ids(values: object) -> list[ClientId]:
    """Canonical ids of a single id or an iterable of ids, duplicates removed, order kept."""
    if isinstance(values, (int, str)):
        values = [values]
    if not isinstance(values, Iterable):
        raise InvalidClientId()
    return list(dict.fromkeys(client_id(v) for v in values))


def chan(value: object) -> str:
    """Return a valid chan name or raise :class:`InvalidChan`."""
    if not isinstance(value, str) or not CHAN_PATTERN.match(value):
        raise InvalidChan()
    return value


def message_id(sender: ClientId, key: object = None, content: str = "") -> str:
    """A new message's id: random, or, for a sender's idempotency ``key``, the same one for the same
    ``content`` (the message and where it goes, encoded).

    A retried send then carries the same id, which every inbox, chan stream and history keeps once: a
    terminal that lost the answer to its send may send again. Another message under a key used
    before is another message (another id), never a second content for one id. The id is a keyed
    hash (the project's ``SECRET_KEY``), so no one can predict another sender's ids.
    """
    if key is None:
        return secrets.token_hex(8)
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidMessage(f"A message key must be a string of 1-{MAX_KEY_LENGTH} characters.")
    text = f"{sender}\0{key}\0{content}".encode(errors="surrogatepass")
    return hashlib.blake2b(text, key=_secret(), digest_size=8).hexdigest()


@cache
def _secret() -> bytes:
    return hashlib.blake2b(settings.SECRET_KEY.encode(), digest_size=32).digest()
