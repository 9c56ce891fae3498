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
            from .redis import RedisBackend

            _backend = RedisBackend(conf.REDIS_URL, conf.REDIS_PREFIX, conf.HEARTBEAT_TTL)
        else:
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
