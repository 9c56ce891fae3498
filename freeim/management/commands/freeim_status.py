"""``python manage.py freeim_status``: the deployment's nodes, what each holds, its chans and events backlog."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from freeim.backends import get_backend, run_blocking
from freeim.management.base import FreeIMCommand
from freeim.status import (
    GROUP_HEADINGS,
    NO_GROUP,
    NODE_HEADINGS,
    Status,
    as_json,
    events_line,
    group_cells,
    node_cells,
    not_ready,
    read_status,
    summary,
)


class Command(FreeIMCommand):
    help = ("Show freeim's nodes (state, readiness, seconds since their last heartbeat, loop lag, sockets and "
            "clients each holds), online clients, chans and the events stream's backlog per consumer group.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object, for scripts")
        parser.add_argument("--chans", action="store_true", help="list every chan with its member count too")

    def handle(self, *args: Any, chans: bool, **options: Any) -> None:
        status = run_blocking(read_status(get_backend().blocking(), chans))
        self.stdout.write(json.dumps(as_json(status), indent=2) if options["json"] else "\n".join(_table(status)))


def _table(status: Status) -> list[str]:
    """``status`` for people: a summary line, then a table per part."""
    lines = [summary(status), ""]
    lines += _columns(NODE_HEADINGS, 3, [node_cells(node) for node in status.nodes])
    lines += [f"{node.name} is not ready: {why}" for node in status.nodes if (why := not_ready(node))]
    lines += ["", events_line(status.events)]
    if status.events is not None and status.events.groups:
        lines += _columns(GROUP_HEADINGS, 1, [group_cells(group) for group in status.events.groups])
    elif status.events is not None:
        lines.append(NO_GROUP)
    if status.chans is not None:
        lines += ["", *_columns(["chan", "members"], 1, [[chan, f"{members:,}"] for chan, members in status.chans])]
    return lines


def _columns(header: list[str], texts: int, rows: list[list[str]]) -> list[str]:
    """Rows under ``header``: the first ``texts`` columns left-aligned, the others (figures) right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return ["  ".join(cell.ljust(width) if index < texts else cell.rjust(width)
                      for index, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in [header, *rows]]
