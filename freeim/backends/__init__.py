"""Store and transport backends, and the one place that picks one for the settings."""

from __future__ import annotations

from django.core.signals import setting_changed
from django.dispatch import receiver

from ..conf import conf
from .base import Backend

_backend: Backend | None = None


def get_backend() -> Backend:
    """The process-wide backend for the current settings: memory unless ``REDIS_URL`` is set."""
    global _backend
    if _backend is None:
        if conf.REDIS_URL:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "FREEIM['REDIS_URL'] is set, but this freeim version has only the embedded backend; "
                "remove REDIS_URL to run one process on the memory store."
            )
        from .memory import MemoryBackend

        _backend = MemoryBackend()
    return _backend


def reset_backend() -> None:
    """Forget the backend (tests, settings changes); the next call builds a fresh one."""
    global _backend
    _backend = None


@receiver(setting_changed)
def _reset_on_settings_change(setting: str, **kwargs: object) -> None:
    if setting == "FREEIM":
        reset_backend()


__all__ = ["Backend", "get_backend", "reset_backend"]
