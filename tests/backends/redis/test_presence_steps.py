"""Presence as steps of one slot each (freeim.backends.redis.presence): steps that run late or are cut short
still end as the newest truth says, and every script touches one slot."""

import uuid

from freeim.backends.redis import RedisBackend
from freeim.backends.redis import presence as redis_presence
from freeim.backends.redis.client import Connections
from freeim.backends.redis.keys import PARTITIONS, slot
from freeim.backends.redis.lua import SCRIPTS
from freeim.backends.redis.presence import PARTITIONS_PER_REPAIR, Presence
from freeim.backends.redis.steps import Lua, Pipe
from tests.backends.redis.test_redis import every_script


def first_step_only(backend, steps):
    """Run the first step of ``steps`` and no more: its caller died there. The reply of that step."""
    reply = backend.connections.issue(backend.connections.blocking, next(steps))
    steps.close()
    return reply


def chan_state(sync, chan):
    return sync.store.chan_members(chan), sync.store.chan_nodes(chan), sync.store.chan_online(chan)


def repair(sync, monkeypatch):
    """Let the reaper push the truth of every client marked, as it does once the marks are old."""
    monkeypatch.setattr(redis_presence, "STALE_AFTER_MS", -1000)
    sync.nodes.register_node("a", "boot-a")
    for _ in range(PARTITIONS // PARTITIONS_PER_REPAIR):  # each run looks into some partitions
        assert sync.nodes.reap("a") == []


def test_a_join_cut_short_before_its_chan_learnt_of_it_is_pushed_by_the_reaper(backend, sync, monkeypatch):
    sync.store.add_connection("a", 1, "a1")
    first_step_only(backend, Presence(backend.keys).join(1, ["room"], 10))
    assert sync.store.client_chans(1) == ["room"]
    assert chan_state(sync, "room") == ([], [], 0)
    repair(sync, monkeypatch)
    assert chan_state(sync, "room") == ([1], ["a"], 1)


def test_the_reaper_pushes_cut_short_truths_while_a_node_that_died_holds_its_lock(backend, sync, monkeypatch):
    """Every node took the reaper's lock on every run to look for them: one killed holding it kept every other from
    reaping dead nodes for three heartbeat TTLs (the live-ops browser test met it)."""
    sync.store.add_connection("a", 1, "a1")
    first_step_only(backend, Presence(backend.keys).join(1, ["room"], 10))
    backend.connections.blocking.set(backend.keys.shared("reaper"), "a-node-killed-holding-it", px=60_000)
    repair(sync, monkeypatch)
    assert chan_state(sync, "room") == ([1], ["a"], 1)


def test_a_client_gone_offline_cut_short_leaves_its_chans_once_the_reaper_pushes_it(backend, sync, monkeypatch):
    sync.store.add_connection("a", 1, "a1")
    sync.store.add_connection("b", 1, "b1")
    sync.store.join(1, ["room", "lobby"])
    first_step_only(backend, Presence(backend.keys).detach("b", {"1": ["b1"]}, {}, "own"))
    assert sync.store.chan_nodes("room") == ["a", "b"]  # b's socket is gone, the chan does not know yet
    first_step_only(backend, Presence(backend.keys).detach("a", {"1": ["a1"]}, {}, "own"))
    assert sync.store.online_clients() == [] and chan_state(sync, "room") == ([1], ["a", "b"], 1)
    repair(sync, monkeypatch)
    assert chan_state(sync, "room") == chan_state(sync, "lobby") == ([], [], 0)
    assert sync.store.chan_list() == []


def test_a_push_that_arrives_after_a_newer_one_changes_nothing(backend, sync):
    sync.store.add_connection("a", 1, "a1")
    join = Presence(backend.keys).join(1, ["room"], 10)
    reply = backend.connections.issue(backend.connections.blocking, next(join))
    sync.store.leave(1, ["room"])  # newer: pushed first
    late_push = join.send(reply)
    backend.connections.issue(backend.connections.blocking, late_push)
    assert chan_state(sync, "room") == ([], [], 0)
    assert sync.store.client_chans(1) == []


def test_a_member_that_comes_back_is_a_member_again(backend, sync):
    """The record it left behind is older than its new join."""
    sync.store.add_connection("a", 1, "a1")
    sync.store.join(1, ["room"])
    sync.store.remove_connection("a", 1, "a1")
    assert chan_state(sync, "room") == ([], [], 0)
    sync.store.add_connection("b", 1, "b1")
    sync.store.join(1, ["room"])
    assert chan_state(sync, "room") == ([1], ["b"], 1)


def test_the_records_of_members_that_left_go_after_their_life(backend, sync, monkeypatch):
    monkeypatch.setattr(redis_presence, "ENDED_LIFE_MS", 50)
    members = backend.keys.chan("room", "members")
    for client in (1, 2):
        sync.store.add_connection("a", client, f"a{client}")
        sync.store.join(client, ["room"])
    sync.store.leave(1, ["room"])
    sync.store.leave(2, ["room"])  # nobody left in it: its records expire
    redis = backend.connections.blocking
    assert set(redis.hkeys(members)) == {"1", "2"} and 0 < redis.pttl(members) <= 50
    sync.store.join(1, ["room"])  # a push past their life takes the old ended records off
    sync.store.add_connection("a", 3, "a3")
    sync.store.join(3, ["room"])
    assert redis.pttl(members) == -1  # a member again: kept
    assert sync.store.chan_members("room") == [1, 3]


class SlotsSeen(Connections):
    """Records the slots of each script's keys."""

    seen: list[tuple[str, set[int]]] = []

    def issue(self, client, step):
        for inner in step.steps if isinstance(step, Pipe) else (step,):
            if isinstance(inner, Lua):
                tags = {key[key.index("{") + 1:key.index("}")] for key in inner.keys}
                SlotsSeen.seen.append((inner.name, {slot(tag) for tag in tags}))
        return super().issue(client, step)


def test_every_script_touches_one_slot(redis_server):
    backend = RedisBackend(redis_server.url, f"t{uuid.uuid4().hex[:8]}", 1, connections=SlotsSeen)
    try:
        every_script(backend)
    finally:
        backend.flush()
    spanning = {name: slots for name, slots in SlotsSeen.seen if len(slots) != 1}
    assert spanning == {}
    assert set(SCRIPTS) - {name for name, _ in SlotsSeen.seen} == {"trim_inbox", "resync"}  # their own tests


def test_a_client_in_thousands_of_chans_joins_leaves_and_goes_offline(backend, sync, settings):
    """Lua's unpack takes a few thousand items at most: the scripts give Redis a thousand at a time."""
    settings.FREEIM = {"MAX_CHANS_PER_CLIENT": 10_000}
    chans = [f"room{n}" for n in range(9000)]
    sync.store.add_connection("a", 1, "a1")
    sync.store.join(1, chans)
    assert len(sync.store.client_chans(1)) == 9000 and sync.store.chan_members("room8999") == [1]
    sync.store.leave(1, chans[:8500])
    assert sync.store.remove_connection("a", 1, "a1") is True
    assert sync.store.chan_count() == 0
