"""Presence without a socket, for REST tests that only need a user to count as online."""

from __future__ import annotations

from typing import Any

from freeim.backends import get_backend, run_blocking


def online(*users: Any) -> None:
    """Mark each user's client online on the embedded node, as one connection would."""
    for user in users:
        run_blocking(get_backend().store.add_connection("local", user.pk, f"test-{user.pk}"))
