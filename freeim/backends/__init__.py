"""Store, node liveness, transport and events backends (:mod:`.contract`), and the one place that
builds the process's backend from ``FREEIM['BACKEND']``: :mod:`.memory` (embedded) or :mod:`.redis`."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..conf import conf
from ..exceptions import NoEmbeddedNode
from .contract import Backend, run_blocking

_backend: Backend | None = None
_hosting = False


def get_backend() -> Backend:
    """The process-wide backend: ``FREEIM['BACKEND']`` built with ``BACKEND_OPTIONS`` on first use.

    A process-local one (the embedded default) only in the process that hosts it (:func:`host_here`):
    anywhere else a send would vanish and presence read empty, so this raises :class:`NoEmbeddedNode`.
    """
    global _backend
    if _backend is None:
        built = import_string(conf.BACKEND)(**conf.BACKEND_OPTIONS)
        if not isinstance(built, Backend):
            raise ImproperlyConfigured(f"FREEIM['BACKEND'] ({conf.BACKEND}) made {built!r}, not a freeim Backend.")
        _backend = built
    if _backend.process_local and not _hosting:
        raise NoEmbeddedNode()
    return _backend


def host_here(hosting: bool = True) -> bool:
    """Declare whether this process holds a process-local backend's state; return what it was.

    The server process does (:func:`freeim.asgi.wrap` and the node's start say so), and so does a test
    that drives the node in its own process (:mod:`freeim.testing`); a shell, a worker or a WSGI process
    does not.
    """
    global _hosting
    before, _hosting = _hosting, hosting
    return before


def reset_backend() -> None:
    """Forget the backend (tests, settings changes); the next call builds a fresh one."""
    global _backend
    _backend = None


@receiver(setting_changed)
def _reset_on_settings_change(setting: str, **kwargs: object) -> None:
    if setting == "FREEIM":
        reset_backend()


__all__ = ["Backend", "get_backend", "host_here", "reset_backend", "run_blocking"]
