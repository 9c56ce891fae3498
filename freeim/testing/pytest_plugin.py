"""freeim's pytest plugin, loaded by pytest itself once django-freeim is installed (the ``pytest11`` entry
point), next to pytest-django's.

Every test of a project with freeim installed runs :func:`~freeim.testing.isolated`: a fresh embedded node in
the test's process, auto-join off without database access. Fixtures:

* ``freeim_outbox``: every message sent during the test (:func:`~freeim.testing.captured_sends`);
* ``freeim_signals``: a :class:`~freeim.testing.SignalRecorder` (``await freeim_signals.wait(client_offline,
  client_id=1)``);
* ``freeim_terminal``: :func:`~freeim.testing.terminal`, a connected test terminal on your
  ``ASGI_APPLICATION`` (``async with freeim_terminal(1) as alice:``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


def _freeim_installed() -> bool:
    from django.apps import apps
    from django.conf import settings

    return settings.configured and apps.ready and apps.is_installed("freeim")


@pytest.fixture(autouse=True)
def _freeim_isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    if not _freeim_installed():
        yield
        return
    from freeim.testing.isolation import has_database, isolated

    with isolated(database=has_database(request)):
        yield


@pytest.fixture
def freeim_outbox() -> Iterator[list[Any]]:
    from freeim.testing import captured_sends

    with captured_sends() as outbox:
        yield outbox


@pytest.fixture
def freeim_signals() -> Iterator[Any]:
    from freeim.testing import recorded_signals

    with recorded_signals() as recorder:
        yield recorder


@pytest.fixture
def freeim_terminal() -> Callable[..., Any]:
    from freeim.testing.communicator import terminal

    return terminal
