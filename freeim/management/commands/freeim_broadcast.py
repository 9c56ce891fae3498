"""``python manage.py freeim_broadcast``: a message to every socket, as ``im.send_broadcast_message`` sends it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from freeim import im
from freeim.management.base import FreeIMCommand, json_argument


class Command(FreeIMCommand):
    help = "Send a message (JSON) to every socket on every node, as im.send_broadcast_message (it is not kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", type=json_argument, required=True,
                            help="the message, as JSON (the frame's \"data\"): '{\"text\": \"maintenance at 22:00\"}'")

    def handle(self, *args: Any, data: Any, **options: Any) -> None:
        im.send_broadcast_message(data)
        self.stdout.write("broadcast sent to every node alive")
