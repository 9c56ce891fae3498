"""The freeim.history app: the database history of private and chan messages."""

from __future__ import annotations

from django.apps import AppConfig


class HistoryConfig(AppConfig):
    name = "freeim.history"
    label = "freeim_history"
    verbose_name = "freeim history"
    default_auto_field = "django.db.models.BigAutoField"
