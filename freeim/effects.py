"""Run a generator of effects with blocking or awaited I/O.

freeim writes each piece of I/O logic once, as a generator that yields what it
needs done and receives the result. :func:`drive` performs each effect
blocking (sync callers), :func:`adrive` awaits it (the node, async callers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")
Effects = Generator[Any, Any, T]


def drive(effects: Effects[T], perform: Callable[[Any], Any]) -> T:
    """Run ``effects``, performing each yielded effect with ``perform``."""
    try:
        effect = next(effects)
        while True:
            effect = effects.send(perform(effect))
    except StopIteration as stop:
        return stop.value


async def adrive(effects: Effects[T], perform: Callable[[Any], Awaitable[Any]]) -> T:
    """Run ``effects``, awaiting ``perform`` for each yielded effect."""
    try:
        effect = next(effects)
        while True:
            effect = effects.send(await perform(effect))
    except StopIteration as stop:
        return stop.value
