"""Each test on a fresh embedded node in the test's own process, for pytest and Django's runner alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .. import autojoin, request_threads
from ..backends import host_here, reset_backend
from .capture import Sent, SignalRecorder, captured_sends, recorded_signals


@contextlib.contextmanager
def isolated(database: bool = True) -> Iterator[None]:
    """A fresh backend while inside, hosted in this process (so the embedded default works in the test, where
    a shell raises :class:`~freeim.exceptions.NoEmbeddedNode`). Without ``database`` access, no auto-join
    provider and no managed-chan test (``freeim.groups``' read the database: each connect would log their
    failure, and each chan message would fail). No thread kept for HTTP requests (:mod:`freeim.request_threads`)
    from before, nor after: such a thread keeps the database connections a request opened on it."""
    hosted = host_here()
    reset_backend()
    request_threads.forget()
    try:
        with contextlib.nullcontext() if database else autojoin.suspended():
            yield
    finally:
        request_threads.forget()
        reset_backend()
        host_here(hosted)


class FreeIMTestMixin:
    """For Django's test runner: each test :func:`isolated` (auto-join off where the test case has no
    ``databases``), with ``self.freeim_outbox`` (:func:`captured_sends`) and ``self.freeim_signals`` (a
    :class:`SignalRecorder`), around ``setUp``, the test and ``tearDown`` (so a ``setUp`` that does not call
    ``super().setUp()`` changes nothing)::

        class OrderTests(FreeIMTestMixin, TestCase):
            def test_shipping_notifies_the_owner(self): ...
    """

    freeim_outbox: list[Sent]
    freeim_signals: SignalRecorder

    def run(self, result: Any = None) -> Any:
        with isolated(database=bool(getattr(self, "databases", ()))), captured_sends() as self.freeim_outbox, \
                recorded_signals() as self.freeim_signals:
            return super().run(result)  # type: ignore[misc]  # a TestCase's, after this class in the MRO


def has_database(request: Any) -> bool:
    """Whether the pytest test of ``request`` may use the database (pytest-django's marker or fixtures, or a
    Django test case with ``databases``)."""
    if request.node.get_closest_marker("django_db"):
        return True
    if {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"} \
            & set(request.fixturenames):
        return True
    return bool(getattr(request.node.cls, "databases", ()))
