"""The freeim.groups app: connects the model signal handlers of :mod:`.live` and registers the groups as
auto-joined, managed chans (:mod:`freeim.autojoin`); describes its REST API when drf-spectacular is installed."""

from __future__ import annotations

from importlib.util import find_spec

from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "freeim.groups"
    label = "freeim_groups"
    verbose_name = "freeim groups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from freeim import autojoin

        from . import live
        from .models import active_group_chans, group_chans_among

        live.connect()
        autojoin.register(active_group_chans)
        autojoin.manage_many(group_chans_among)
        if find_spec("drf_spectacular"):  # the ``openapi`` extra
            from . import openapi  # noqa: F401  (its extensions register themselves)
