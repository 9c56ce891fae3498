"""Groups on real sockets (embedded mode): auto-join on connect, and changes reaching online members at once."""

import json
from unittest.mock import ANY

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from freeim import im
from freeim.backends import get_backend, run_blocking
from freeim.groups.models import Group, Membership
from freeim.groups.signals import group_member_added, group_member_removed
from freeim.testing import connected
from tests.asgi import application
from tests.groups.helpers import add, chan_frame, db, left, make_group, run, silent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def users():
    return {name: User.objects.create(username=name) for name in ("alice", "bob", "carol")}


@pytest.fixture
def recorded():
    """Every group_member_added/removed signal, as ``(kind, group slug, client_id, online when sent)``."""
    events = []

    def record(kind):
        def receiver(group, client_id, membership, **kwargs):
            assert isinstance(membership, Membership)
            events.append((kind, group.slug, client_id, group.slug in im.get_chan_list_by_client_id(client_id)))
        return receiver

    receivers = {group_member_added: record("added"), group_member_removed: record("removed")}
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    yield events
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def test_members_get_group_messages_from_their_first_frame_without_joining(users):
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    make_group("team", alice, bob, "sensor-1")
    make_group("closed", alice, is_active=False)

    async def scenario():
        async with connected(application, alice.pk) as a, connected(application, bob.pk) as b, \
                connected(application, carol.pk) as c, connected(application, "sensor-1") as s:
            assert await im.aget_chan_list_by_client_id(alice.pk) == ["team"]
            await im.asend_chan_message("boss", "team", {"text": "hello team"})
            expected = {"type": "chan", "id": ANY, "chan": "team", "from": "boss", "data": {"text": "hello team"}}
            assert [await chan_frame(t) for t in (a, b, s)] == [expected] * 3
            await silent(c)
        assert await im.aget_chan_list() == []  # left with the last disconnect, as any chan

    run(scenario)


def test_a_second_device_shares_the_groups_of_its_client(users):
    alice = users["alice"]
    make_group("team", alice)

    async def scenario():
        async with connected(application, alice.pk) as phone, connected(application, alice.pk) as laptop:
            await im.asend_chan_message("boss", "team", "both")
            assert [(await chan_frame(t))["data"] for t in (phone, laptop)] == ["both", "both"]

    run(scenario)


def test_adding_and_removing_a_member_reach_the_online_client_at_once(users, recorded):
    alice, bob = users["alice"], users["bob"]
    group = make_group("team", alice)

    async def scenario():
        async with connected(application, alice.pk) as a, connected(application, bob.pk) as b:
            membership = await db(add)(group, bob)
            await im.asend_chan_message("boss", "team", "welcome bob")
            assert [(await chan_frame(t))["data"] for t in (a, b)] == ["welcome bob"] * 2
            await db(membership.delete)()
            assert await im.aget_chan_list_by_client_id(bob.pk) == []
            await left(b, "team")
            await im.asend_chan_message("boss", "team", "bob left")
            assert (await chan_frame(a))["data"] == "bob left"
            await silent(b)

    run(scenario)
    assert recorded == [("added", "team", alice.pk, False), ("added", "team", bob.pk, True),
                        ("removed", "team", bob.pk, False)]


def test_nothing_happens_for_a_rolled_back_change(users, recorded):
    bob = users["bob"]
    group = make_group("team")

    def add_then_roll_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            add(group, bob)
            raise RuntimeError("rolled back")

    async def scenario():
        async with connected(application, bob.pk):
            await db(add_then_roll_back)()
            assert await im.aget_chan_list_by_client_id(bob.pk) == []

    run(scenario)
    assert recorded == []


def test_deactivating_renaming_reactivating_and_deleting_a_group(users):
    alice, bob = users["alice"], users["bob"]
    group = make_group("team", alice, bob)

    def update(**fields):
        for name, value in fields.items():
            setattr(group, name, value)
        group.save()

    async def chans():
        return [await im.aget_chan_list_by_client_id(u.pk) for u in (alice, bob)]

    async def scenario():
        async with connected(application, alice.pk) as a, connected(application, bob.pk) as b:
            await db(update)(title="A new title")  # no chan change
            assert await chans() == [["team"], ["team"]]
            await db(update)(is_active=False)
            assert await chans() == [[], []]
            for terminal in (a, b):
                await left(terminal, "team")
            await im.asend_chan_message("boss", "team", "nobody hears")
            await silent(a, b)
            await db(update)(is_active=True, slug="crew")
            assert await chans() == [["crew"], ["crew"]]
            await db(update)(slug="squad")
            assert await chans() == [["squad"], ["squad"]]
            for terminal in (a, b):
                await left(terminal, "crew")
            await im.asend_chan_message("boss", "squad", "renamed")
            assert [(await chan_frame(t))["chan"] for t in (a, b)] == ["squad", "squad"]
            await db(group.delete)()
            assert await chans() == [[], []]
            for terminal in (a, b):
                await left(terminal, "squad")

    run(scenario)


def test_deleting_a_user_removes_its_client_from_its_groups(users, recorded):
    alice, bob = users["alice"], users["bob"]
    alice_id = alice.pk
    make_group("team", alice, bob)
    make_group("pair", alice)
    recorded.clear()

    async def scenario():
        async with connected(application, alice_id), connected(application, bob.pk):
            await db(alice.delete)()
            assert await im.aget_chan_list_by_client_id(alice_id) == []
            assert await im.aget_chan_list_by_client_id(bob.pk) == ["team"]

    run(scenario)
    assert sorted(recorded) == [("removed", "pair", alice_id, False), ("removed", "team", alice_id, False)]


def test_deleting_groups_in_bulk_sends_each_removal(users, recorded):
    make_group("team", users["alice"], users["bob"])
    make_group("pair", users["alice"])
    recorded.clear()
    Group.objects.all().delete()
    assert sorted((kind, slug) for kind, slug, *_ in recorded) == [("removed", "pair"), ("removed", "team"),
                                                                    ("removed", "team")]


async def only_members_hear(chan, members, squatters):
    """``chan`` holds exactly ``members`` (terminal by client id): they hear a chan message; the squatters
    were told they left it, and hear nothing more."""
    assert sorted(await im.aget_chan_client_list(chan)) == sorted(members)
    for squatter in squatters:
        await left(squatter, chan)
    await im.asend_chan_message("boss", chan, "members only")
    assert [(await chan_frame(t))["data"] for t in members.values()] == ["members only"] * len(members)
    await silent(*squatters)


def make_group_at_once(slug, *members, **fields):
    """A group with its members in one transaction, as the admin saves a group with its membership rows."""
    with transaction.atomic():
        return make_group(slug, *members, **fields)


def test_a_group_created_on_a_chan_evicts_the_squatter_and_keeps_the_members_there(users):
    alice, bob, carol = users["alice"], users["bob"], users["carol"]

    async def scenario():
        async with connected(application, alice.pk) as a, connected(application, bob.pk) as b, \
                connected(application, carol.pk) as c:
            await im.ajoin_chan(carol.pk, "team")  # joined by name before the group existed
            await im.ajoin_chan(alice.pk, "team")
            await db(make_group_at_once)("team", alice, bob)
            await only_members_hear("team", {alice.pk: a, bob.pk: b}, [c])
            await im.ajoin_chan(carol.pk, "pair")
            await db(make_group_at_once)("pair", alice, is_active=False)  # an inactive group has no chan
            assert await im.aget_chan_client_list("pair") == []
            await left(c, "pair")

    run(scenario)


def test_renaming_a_group_onto_a_chan_evicts_the_squatter(users):
    alice, carol = users["alice"], users["carol"]
    group = make_group("crew", alice)

    def rename():
        group.slug = "squad"
        group.save()

    async def scenario():
        async with connected(application, alice.pk) as a, connected(application, carol.pk) as c:
            await im.ajoin_chan(carol.pk, "squad")
            await db(rename)()
            await left(a, "crew")
            await only_members_hear("squad", {alice.pk: a}, [c])

    run(scenario)


def test_reactivating_a_group_evicts_whoever_joined_its_chan_meanwhile(users):
    alice, carol = users["alice"], users["carol"]
    group = make_group("team", alice, is_active=False)

    def reactivate():
        group.is_active = True
        group.save()

    async def scenario():
        async with connected(application, alice.pk) as a, connected(application, carol.pk) as c:
            await im.ajoin_chan(carol.pk, "team")  # business code may; the core REST API may not
            await db(reactivate)()
            await only_members_hear("team", {alice.pk: a}, [c])

    run(scenario)


@pytest.fixture
def history(settings):
    settings.FREEIM = {"HISTORY": "freeim.history.store.ModelHistory"}


def kept(chan):
    from freeim.history.models import ChanMessage

    return list(ChanMessage.objects.filter(chan=chan).order_by("pk").values_list("data", flat=True))


def caught_up(chan):
    """What a member that comes to ``chan`` now would catch up on from its stream."""
    [read] = run_blocking(get_backend().blocking().store.read_chans({chan: "*"})).values()
    return [json.loads(message.frame)["data"] for message in read.messages]


def test_a_deleted_groups_messages_are_not_left_for_whoever_takes_its_name(users, history):
    """A deleted group's slug became a plain chan: anyone who joined it read the group's history and caught up
    on its stream."""
    group = make_group("board", users["alice"])
    im.send_chan_message(users["alice"].pk, "board", "board only")
    assert kept("board") == ["board only"]
    group.delete()
    assert kept("board") == [] and caught_up("board") == []


def test_a_renamed_group_keeps_its_history_under_its_new_name_and_leaves_none_under_the_old(users, history):
    group = make_group("old-name", users["alice"])
    im.send_chan_message(users["alice"].pk, "old-name", "said before the rename")
    group.slug = "new-name"
    group.save()
    assert kept("new-name") == ["said before the rename"]
    assert kept("old-name") == [] and caught_up("old-name") == []


def test_a_group_made_with_a_plain_chans_name_starts_without_its_past(users, history):
    im.send_chan_message("stranger", "lobby", "said in the plain chan")
    assert caught_up("lobby") == ["said in the plain chan"]
    make_group("lobby", users["alice"])
    assert kept("lobby") == [] and caught_up("lobby") == []
