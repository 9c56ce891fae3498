"""What freeim's management commands share: freeim's errors as ``CommandError``s, JSON arguments."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from ..exceptions import FreeIMError
from ..protocol import decode


class FreeIMCommand(BaseCommand):
    """A command over freeim's API. Bad input (a client id, a message too large), an unreachable store or a
    configuration that cannot serve it (the embedded mode from a shell) ends it with freeim's message
    (``CommandError: ...``, exit status 1), never a traceback."""

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except (FreeIMError, ImproperlyConfigured) as error:
            raise CommandError(str(error)) from error


def json_argument(text: str) -> Any:
    """An argument that must be JSON, decoded as a terminal would get it (argparse's ``type``)."""
    try:
        return decode(text)
    except ValueError as error:
        reason = str(error).rstrip(".")  # freeim's own messages end with one ("... 64 levels deep..")
        raise argparse.ArgumentTypeError(f"not JSON: {reason}. A JSON string needs its quotes: '\"hello\"'.") from None
