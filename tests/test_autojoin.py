"""The managed-chan tests of freeim.autojoin: single and batched, asked as few times as the answer needs."""

import pytest

from freeim import autojoin
from freeim.groups.models import group_chans_among


@pytest.fixture
def asked():
    """A batched test managing ``team-*`` and a single one managing ``room-*``, recording what they are asked
    (instead of freeim.groups' test, which reads the database)."""
    calls = []

    def teams(chans):
        calls.append(("batched", list(chans)))
        return {chan for chan in chans if chan.startswith("team-")} | {"not-asked-about"}

    def rooms(chan):
        calls.append(("single", chan))
        return chan.startswith("room-")

    autojoin.unmanage_many(group_chans_among)
    autojoin.manage_many(teams)
    autojoin.manage(rooms)
    yield calls
    autojoin.unmanage_many(teams)
    autojoin.unmanage(rooms)
    autojoin.manage_many(group_chans_among)


def test_managed_among_asks_each_batched_test_once_and_single_tests_only_about_the_rest(asked):
    chans = ["team-1", "room-1", "lobby", "team-2", "team-1"]
    assert autojoin.managed_among(chans) == {"team-1", "team-2", "room-1"}  # a batched answer counts for the
    # chans asked about only
    assert asked == [("batched", ["team-1", "room-1", "lobby", "team-2"]), ("single", "room-1"),
                     ("single", "lobby")]


def test_is_managed_asks_both_kinds(asked):
    assert [autojoin.is_managed(chan) for chan in ("team-1", "room-1", "lobby")] == [True, True, False]


def test_nothing_is_asked_about_no_chans(asked):
    assert autojoin.managed_among([]) == set()
    assert asked == []
