"""``python manage.py freeim_offline``: close every socket of some clients, as ``im.force_offline`` does."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from freeim import im
from freeim.ids import client_id
from freeim.management.base import FreeIMCommand


class Command(FreeIMCommand):
    help = "Close every socket of each CLIENT with close code 4000 (forced offline: its terminals do not reconnect)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("clients", nargs="+", metavar="client", help="a client id")

    def handle(self, *args: Any, clients: list[str], **options: Any) -> None:
        wanted = [client_id(client) for client in clients]  # all checked before any is closed
        where = im.get_client_nodes(wanted)
        for client in dict.fromkeys(wanted):
            im.force_offline(client)
            nodes = where.get(client, {})
            self.stdout.write(f"client {client}: " + (
                f"closing {sum(nodes.values())} socket(s) on {', '.join(sorted(nodes))}" if nodes else "not online"))
