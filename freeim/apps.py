"""The freeim app: registers its system checks (:mod:`freeim.checks`)."""

from __future__ import annotations

from django.apps import AppConfig


class FreeIMConfig(AppConfig):
    name = "freeim"
    verbose_name = "freeim"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from .checks import check_settings

        checks.register(check_settings, "freeim")
