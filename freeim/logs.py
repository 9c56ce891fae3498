"""freeim's log lines as JSON, for a log pipeline: ``JSONFormatter`` in your ``LOGGING``.

The lines of connects, disconnects, refused handshakes, sockets the node closes (a forced offline among
them), a node's start, drain and stop and the reaping of a dead node carry their facts as fields of their
record (``extra``): ``event``, ``node``, ``client_id``, ``code``... The formatter writes them beside the
time, level, logger and message, one JSON object per line; other lines (yours, Django's) get the first four.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

#: The record attributes freeim sets on its event lines, in the order they are written.
FIELDS = ("event", "node", "client_id", "code", "reason", "peer", "sockets", "clients")


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the fields of
    :data:`FIELDS` the record has, and ``exception`` (its traceback) if it carries one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update({field: getattr(record, field) for field in FIELDS if hasattr(record, field)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def fields(event: str, node: str, **facts: Any) -> dict[str, Any]:
    """The ``extra`` of a freeim event line (:data:`FIELDS`)."""
    return {"event": event, "node": node, **facts}
