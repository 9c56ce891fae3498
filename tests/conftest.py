"""Shared fixtures: every test starts on a fresh embedded backend and node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from freeim.backends import reset_backend


@pytest.fixture(autouse=True)
def fresh_backend() -> Iterator[None]:
    reset_backend()
    yield
    reset_backend()
