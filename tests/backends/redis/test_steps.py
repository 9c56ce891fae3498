"""Driving an operation's steps (freeim/backends/redis/steps.py), pure."""

import asyncio

import pytest

from freeim.backends.redis.steps import adrive, drive, one


def operation():
    first = yield one("get", "a")
    second = yield one("get", "b")
    return [first, second]


def test_each_step_gets_its_reply_and_the_operation_returns():
    assert drive(operation(), lambda step: step.args[0]) == ["a", "b"]
    assert asyncio.run(adrive(operation(), _areply)) == ["a", "b"]


async def _areply(step):
    return step.args[0]


def _runs_out(_step):
    return next(iter(()))


async def _aruns_out(step):
    return _runs_out(step)


def test_a_step_that_raises_stop_iteration_fails_the_operation_rather_than_end_it():
    """A StopIteration out of a step (a next() that ran out in the code sending it) was taken for the operation's
    end: it returned None, as if it had done all it was asked."""
    with pytest.raises(StopIteration):
        drive(operation(), _runs_out)
    with pytest.raises(RuntimeError, match="coroutine raised StopIteration"):
        asyncio.run(adrive(operation(), _aruns_out))
