"""Frames as tests compare them."""

import re

POSITION = re.compile(r"^[0-9a-f]{1,16}\.[0-9]{1,18}$")


def unpositioned(frame):
    """A message frame without its inbox position, which must be one."""
    frame = dict(frame)
    assert POSITION.match(frame.pop("pos", "")), f"no position in {frame!r}"
    return frame


def without_position(frame):
    """A frame without its position, if it has one (which must be one)."""
    return unpositioned(frame) if "pos" in frame else frame
