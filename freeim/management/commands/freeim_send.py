"""``python manage.py freeim_send``: a private message from the shell, as ``im.send_message`` sends it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from freeim import im
from freeim.management.base import FreeIMCommand, json_argument


class Command(FreeIMCommand):
    help = ("Send a private message (JSON) from SENDER to each RECEIVER, as im.send_message: to their sockets, and "
            "into their inboxes for those that are away.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sender", help="the client id it comes from (the frame's \"from\")")
        parser.add_argument("receivers", nargs="+", metavar="receiver", help="a client id it goes to")
        parser.add_argument("--data", type=json_argument, required=True,
                            help="the message, as JSON (the frame's \"data\"): '{\"text\": \"hi\"}', '\"hi\"'")
        parser.add_argument("--receipt", action="store_true", help="the sender's sockets get a receipt per receiver")
        parser.add_argument("--key", help="an idempotency key: sent again with it, the message is the same one")

    def handle(self, *args: Any, sender: str, receivers: list[str], data: Any, receipt: bool, key: str | None,
               **options: Any) -> None:
        message_id = im.send_message(sender, receivers, data, receipt=receipt, key=key)
        online = im.has_online(receivers)
        self.stdout.write(f"sent message {message_id}; {sum(online.values())} of its {len(online)} receiver(s) online")
