"""``python manage.py freeim_status``: the deployment's nodes, what each holds, its chans and events backlog."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from freeim.backends import get_backend, run_blocking
from freeim.management.base import FreeIMCommand
from freeim.status import Status, as_json, read_status


class Command(FreeIMCommand):
    help = ("Show freeim's nodes (state, seconds since their last heartbeat, sockets and clients each holds), "
            "online clients, chans and the events stream's backlog per consumer group.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object, for scripts")
        parser.add_argument("--chans", action="store_true", help="list every chan with its member count too")

    def handle(self, *args: Any, chans: bool, **options: Any) -> None:
        status = run_blocking(read_status(get_backend().blocking(), chans))
        self.stdout.write(json.dumps(as_json(status), indent=2) if options["json"] else "\n".join(_table(status)))


def _table(status: Status) -> list[str]:
    """``status`` for people: a summary line, then a table per part."""
    sockets = sum(node.connections for node in status.nodes)
    lines = [f"{len(status.nodes)} node(s), {status.online_clients:,} client(s) online on {sockets:,} socket(s), "
             f"{status.chan_count:,} chan(s)", ""]
    lines += _columns(["node", "state", "last heartbeat", "sockets", "clients"], 2,
                      [[node.name, node.state, "-" if node.heartbeat_age is None else f"{node.heartbeat_age:.1f} s ago",
                        f"{node.connections:,}", f"{node.clients:,}"] for node in status.nodes])
    if status.events is None:
        lines += ["", "events: sent by the node itself (embedded mode), no stream"]
    else:
        lines += ["", f"events stream: {status.events.length:,} kept"]
        if status.events.groups:
            lines += _columns(["group", "consumers", "pending", "lag"], 1,
                              [[group.name, f"{group.consumers:,}", f"{group.pending:,}",
                                "?" if group.lag is None else f"{group.lag:,}"] for group in status.events.groups])
        else:
            lines.append("no consumer group yet: no freeim_events worker ever ran")
    if status.chans is not None:
        lines += ["", *_columns(["chan", "members"], 1, [[chan, f"{members:,}"] for chan, members in status.chans])]
    return lines


def _columns(header: list[str], texts: int, rows: list[list[str]]) -> list[str]:
    """Rows under ``header``: the first ``texts`` columns left-aligned, the others (figures) right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return ["  ".join(cell.ljust(width) if index < texts else cell.rjust(width)
                      for index, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in [header, *rows]]
