"""Client ids and chan names: validation and the one canonical form.

Client ids are ints or strings. A string of decimal digits is the same client
as that int (``"42"`` == ``42``), so ids survive a URL path, a JSON body or a
Redis round trip unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .exceptions import InvalidChan, InvalidClientId

ClientId = int | str

MAX_CLIENT_ID_LENGTH = 128
CHAN_PATTERN = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")
_DECIMAL = re.compile(r"^-?[1-9][0-9]{0,18}$|^0$")


def client_id(value: object) -> ClientId:
    """Return the canonical form of a client id or raise :class:`InvalidClientId`."""
    if isinstance(value, bool):
        raise InvalidClientId()
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not value or len(value) > MAX_CLIENT_ID_LENGTH:
        raise InvalidClientId()
    if not value.isprintable():
        raise InvalidClientId()
    if _DECIMAL.match(value):
        return int(value)
    return value


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
