"""Who is speaking: the client id of an authenticated user."""

from __future__ import annotations

from typing import Any, cast

from django.utils.module_loading import import_string

from .conf import conf
from .ids import ClientId, client_id


def user_client_id(user: Any) -> ClientId:
    """The default resolver: a user's client id is its primary key."""
    return cast(ClientId, user.pk)  # an int or str primary key; client_id_of checks it


def client_id_of(user: Any) -> ClientId:
    """The client id of ``user`` through ``FREEIM['CLIENT_ID_RESOLVER']``."""
    return client_id(import_string(conf.CLIENT_ID_RESOLVER)(user))
