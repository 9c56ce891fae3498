"""The freeim app: registers its system checks (:mod:`freeim.checks`) and, when drf-spectacular is installed,
the description of its REST API (:mod:`freeim.openapi`)."""

from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig


class FreeIMConfig(AppConfig):
    name = "freeim"
    verbose_name = "freeim"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from .checks import check_settings

        checks.register(check_settings, "freeim")
        if find_spec("drf_spectacular"):  # the ``openapi`` extra
            from . import openapi  # noqa: F401  (its extensions register themselves)
