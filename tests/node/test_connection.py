"""The pure parts of a node's connection: the token bucket that limits what a terminal sends."""

from __future__ import annotations

from freeim.node.connection import Frame, TokenBucket


def takes(bucket: TokenBucket, now: float, times: int) -> list[bool]:
    return [bucket.take(now) for _ in range(times)]


def test_a_full_bucket_admits_a_burst_of_rate_events_then_none():
    bucket = TokenBucket(20, now=100.0)
    assert takes(bucket, 100.0, 21) == [True] * 20 + [False]


def test_tokens_come_back_at_the_rate():
    bucket = TokenBucket(20, now=0.0)
    takes(bucket, 0.0, 20)
    assert takes(bucket, 0.1, 3) == [True, True, False]  # 0.1 s at 20/s: two tokens
    assert takes(bucket, 1.1, 21) == [True] * 20 + [False]  # refilled, never beyond the burst


def test_a_steady_sender_at_the_rate_is_never_refused():
    bucket = TokenBucket(20, now=0.0)
    assert all(bucket.take(index / 20) for index in range(200))


def test_a_sender_a_little_over_the_rate_is_refused_once_its_burst_is_spent():
    bucket = TokenBucket(20, now=0.0)
    answers = [bucket.take(index / 25) for index in range(200)]  # 25/s: 5 a second more than it earns
    assert all(answers[:90]) and not all(answers)


def test_a_frame_counts_the_bytes_it_takes_on_the_wire():
    """MAX_BACKLOG_BYTES counted characters: a backlog of non-ASCII text held up to 3-4x its bound."""
    assert len(Frame("é" * 100)) == 4 + 200  # a 4-byte header (126+ bytes), and two bytes a character
