"""Waiting on a condition, never for a fixed time."""

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, step: float = 0.02) -> None:
    """Return once ``check()`` (awaited if it is a coroutine) is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(step)
