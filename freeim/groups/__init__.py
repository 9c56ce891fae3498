"""Persistent chat groups: chans kept as data, managed in the Django admin, joined on connect.

Add ``"freeim.groups"`` to ``INSTALLED_APPS`` after ``"freeim"``, run ``migrate``, and mount
``path("im/groups/", include("freeim.groups.urls"))`` for the REST API.
"""
