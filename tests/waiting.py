"""Waiting on a condition, never for a fixed time: freeim.testing's helper, which projects use too."""

from freeim.testing import eventually

__all__ = ["eventually"]
