"""The chat page's per-tab credential: a signed, short-lived token instead of the shared session cookie.

A browser shares one session cookie between its tabs, so with sessions a second login in another tab
silently switched the first one to the new user. Each tab keeps its own token in ``sessionStorage``
instead and sends it as ``Authorization: Bearer <token>`` on every REST call (freeim.js's ``headers``
option). The token is signed with ``SECRET_KEY``, names the user, expires after :data:`MAX_AGE`, stops
working when the user's password changes (it carries the hash Django's sessions check for the same
purpose) and, when it was issued for a name alone, when the user may no longer log in by name.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import signing
from django.utils.crypto import constant_time_compare
from rest_framework import authentication, exceptions
from rest_framework.request import Request

#: Seconds a tab's token works: a working day, then the tab asks for a name again.
MAX_AGE = 12 * 60 * 60
SCHEME = "Bearer"
SALT = "demo_project.chat.tokens"


def may_log_in_by_name(user: AbstractBaseUser) -> bool:
    """Only active plain users without a usable password: never staff or superusers, never a password's owner.

    Anyone else is not for taking: a staff login could broadcast and force users offline, and a user with a
    password chose to be protected."""
    return user.is_active and not (user.has_usable_password() or getattr(user, "is_staff", False)
                                   or getattr(user, "is_superuser", False))


def issue(user: AbstractBaseUser, by_name: bool) -> str:
    """A token for ``user``; ``by_name``: issued for a name alone, with no password given."""
    return signing.dumps({"id": user.pk, "auth": user.get_session_auth_hash(), "by_name": by_name}, salt=SALT,
                         compress=True)


def user_of(token: str) -> AbstractBaseUser:
    """The active user ``token`` was issued to; ``AuthenticationFailed`` if it is bad, expired or revoked."""
    try:
        claims: dict[str, Any] = signing.loads(token, salt=SALT, max_age=MAX_AGE)
        user = get_user_model()._default_manager.get(pk=claims["id"])
    except signing.SignatureExpired:
        raise exceptions.AuthenticationFailed("This tab's login expired: pick your name again.") from None
    except (signing.BadSignature, get_user_model().DoesNotExist, KeyError, TypeError, ValueError):
        raise exceptions.AuthenticationFailed("Invalid token.") from None
    revoked = not constant_time_compare(str(claims.get("auth")), user.get_session_auth_hash()) or (
        claims.get("by_name") is not False and not may_log_in_by_name(user))
    if revoked or not user.is_active:
        raise exceptions.AuthenticationFailed("This tab's login no longer works: log in again.")
    return user


class TabTokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication by the tab's token. A request with a bad token is refused (401), never passed on to the
    next authentication class: a tab must not fall back to whoever the shared session cookie names."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, str] | None:
        # Split on any whitespace: "Bearer<TAB>token" read as another scheme let the session cookie speak instead.
        parts = authentication.get_authorization_header(request).decode(errors="replace").split(None, 1)
        if not parts or parts[0].lower() != SCHEME.lower():
            return None
        token = parts[1].strip() if len(parts) > 1 else ""
        if not token:
            raise exceptions.AuthenticationFailed("No token after Bearer.")
        return user_of(token), token

    def authenticate_header(self, request: Request) -> str:
        return f'{SCHEME} realm="api"'
