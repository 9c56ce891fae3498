"""The freeim.history app: the database history of private and chan messages; describes its REST API when
drf-spectacular is installed."""

from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig


class HistoryConfig(AppConfig):
    name = "freeim.history"
    label = "freeim_history"
    verbose_name = "freeim history"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if find_spec("drf_spectacular"):  # the ``openapi`` extra
            from . import openapi  # noqa: F401  (its extensions register themselves)
