"""autobahn formats debug messages for every new connection, even with debug logging off.

Its ``WebSocketProtocol`` calls ``pformat`` on some 40 settings per connection to
pass the result to ``log.debug``, and on its transport details per handshake:
14 % of a node's CPU in a reconnect storm (py-spy). :func:`format_only_when_debugging`
makes its ``pformat`` do the work only while txaio's log level is debug or trace.
"""

from __future__ import annotations

from pprint import pformat

NOT_FORMATTED = "(not formatted: autobahn debug logging is off)"


def _pformat_when_debugging(object: object, indent: int = 1, width: int = 80, depth: int | None = None, *,
                            compact: bool = False, sort_dicts: bool = True, underscore_numbers: bool = False) -> str:
    """:func:`pprint.pformat` while txaio logs at debug or trace level; a constant otherwise."""
    import txaio

    # txaio sets up its functions at run time, for the framework in use (daphne: Twisted).
    if txaio.get_global_log_level() in ("debug", "trace"):  # type: ignore[attr-defined]
        return pformat(object, indent, width, depth, compact=compact, sort_dicts=sort_dicts,
                       underscore_numbers=underscore_numbers)
    return NOT_FORMATTED


def format_only_when_debugging() -> None:
    """Patch autobahn's protocol module (loaded by daphne) if it is what we expect."""
    from autobahn.websocket import protocol

    if getattr(protocol, "pformat", None) is pformat:
        protocol.pformat = _pformat_when_debugging  # type: ignore[attr-defined]  # imported there, not exported
