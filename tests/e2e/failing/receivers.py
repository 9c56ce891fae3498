"""A presence receiver with a bug: it raises for every event."""

from typing import Any

#: What its exception says, to count in a process's log.
BUG = "receiver bug in tests.e2e.failing"


def broken(client_id: Any, **kwargs: Any) -> None:
    raise RuntimeError(BUG)
