"""The groups REST API: each endpoint for each role, the denials, bad input, and effects on real sockets."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from demo_project.cluster import free_port
from freeim import autojoin, im
from freeim.groups.models import Group, Membership
from freeim.testing import connected
from tests.asgi import application
from tests.groups.helpers import add, chan_frame, left, make_group, run, silent
from tests.presence import online

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ("owner", "admin", "member")


@pytest.fixture
def people():
    """A user per role in group ``team``, an outsider, and staff (not a member)."""
    people = {name: User.objects.create(username=name) for name in (*ROLES, "outsider")}
    people["staff"] = User.objects.create(username="staff", is_staff=True)
    team = make_group("team", title="The team", description="all of us")
    for role in ROLES:
        add(team, people[role], role)
    return people


def api(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/im/groups/"), ("get", "/im/groups/team/"), ("post", "/im/groups/team/members/"),
    ("delete", "/im/groups/team/members/1/"), ("post", "/im/groups/team/messages/"),
])
def test_every_endpoint_needs_authentication(method, path):
    assert getattr(api(), method)(path, {}, format="json").status_code == 401


def test_my_groups_lists_active_memberships_with_role_and_online_count(people):
    member = people["member"]
    make_group("closed", member, is_active=False)
    make_group("alone", people["outsider"])
    add(make_group("crew"), member, "admin")
    assert [(g["slug"], g["role"], g["online"]) for g in api(member).get("/im/groups/").json()] == [
        ("crew", "admin", 0), ("team", "member", 0)]
    assert api(people["staff"]).get("/im/groups/").json() == []  # staff see their own groups here, too


def test_detail_shows_members_with_presence_to_members_and_staff(people):
    owner, member = people["owner"], people["member"]

    async def scenario():
        async with connected(application, member.pk):
            return [await sync_to_async(api(people[who]).get)("/im/groups/team/") for who in ("owner", "staff")]

    for response in run(scenario):
        body = response.json()
        assert response.status_code == 200
        assert (body["title"], body["description"], body["online"]) == ("The team", "all of us", [member.pk])
        assert [(m["client_id"], m["user"], m["role"], m["online"]) for m in body["members"]] == [
            (owner.pk, owner.pk, "owner", False), (people["admin"].pk, people["admin"].pk, "admin", False),
            (member.pk, member.pk, "member", True)]


def test_detail_denials_and_unknown_groups(people):
    denied = api(people["outsider"]).get("/im/groups/team/")
    assert denied.status_code == 403 and "members" in denied.json()["detail"]
    assert api(people["member"]).get("/im/groups/nope/").status_code == 404
    make_group("closed", people["member"], is_active=False)
    assert api(people["member"]).get("/im/groups/closed/").status_code == 404
    assert api(people["staff"]).get("/im/groups/closed/").json()["is_active"] is False


#: Who may add or remove whom: owners anyone, admins plain members, staff anyone, others nobody.
MAY_MANAGE = {
    "owner": {"owner", "admin", "member"}, "admin": {"member"}, "member": set(), "outsider": set(),
    "staff": {"owner", "admin", "member"},
}


@pytest.mark.parametrize("actor", MAY_MANAGE)
@pytest.mark.parametrize("role", ROLES)
def test_adding_members_by_role(people, actor, role):
    newcomer = User.objects.create(username="newcomer")
    response = api(people[actor]).post("/im/groups/team/members/", {"user": newcomer.pk, "role": role},
                                       format="json")
    if role in MAY_MANAGE[actor]:
        assert response.status_code == 201, response.json()
        assert response.json() | {"joined_at": None} == {"client_id": newcomer.pk, "user": newcomer.pk, "role": role,
                                                         "joined_at": None, "online": False}
    else:
        assert response.status_code == 403, response.json()
        assert not Membership.objects.filter(user=newcomer).exists()


@pytest.mark.parametrize("actor", MAY_MANAGE)
@pytest.mark.parametrize("role", ROLES)
def test_removing_members_by_role(people, actor, role):
    target = people[role]
    response = api(people[actor]).delete(f"/im/groups/team/members/{target.pk}/")
    expected = 204 if role in MAY_MANAGE[actor] else 403
    assert response.status_code == expected
    assert Membership.objects.filter(user=target).exists() == (expected == 403)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "non_field_errors"), ({"user": "outsider", "client_id": "x"}, "non_field_errors"),
    ({"user": 99999}, "user"), ({"client_id": True}, "client_id"), ({"client_id": "x" * 129}, "client_id"),
    ({"client_id": "bot", "role": "king"}, "role"),
    ({"user": True}, "user"),
])
def test_adding_validates_the_body(people, body, field):
    body = {key: people[value].pk if value in people else value for key, value in body.items()}
    response = api(people["owner"]).post("/im/groups/team/members/", body, format="json")
    assert response.status_code == 400 and field in response.json()


def test_adding_a_member_twice_or_removing_a_stranger(people):
    owner = api(people["owner"])
    again = owner.post("/im/groups/team/members/", {"client_id": people["member"].pk}, format="json")
    assert again.status_code == 400 and "already a member" in again.json()["client_id"][0]
    assert owner.delete(f"/im/groups/team/members/{people['outsider'].pk}/").status_code == 404
    assert owner.delete("/im/groups/team/members/" + "x" * 200 + "/").status_code == 400
    assert owner.post("/im/groups/team/members/", {"client_id": "sensor-1"}, format="json").status_code == 201


def test_a_member_added_through_the_api_gets_the_groups_messages_at_once(people):
    outsider = people["outsider"]

    async def scenario():
        async with connected(application, outsider.pk) as socket:
            added = await sync_to_async(api(people["admin"]).post)("/im/groups/team/members/",
                                                                  {"user": outsider.pk}, format="json")
            assert added.json()["online"] is True
            await im.asend_chan_message("boss", "team", "hi newcomer")
            assert (await chan_frame(socket))["data"] == "hi newcomer"
            removed = await sync_to_async(api(people["admin"]).delete)(f"/im/groups/team/members/{outsider.pk}/")
            assert removed.status_code == 204
            await left(socket, "team")
            await im.asend_chan_message("boss", "team", "gone")
            await silent(socket)

    run(scenario)


def test_only_members_post_to_a_group_and_it_reaches_the_online_ones(people):
    member, owner = people["member"], people["owner"]

    async def scenario():
        async with connected(application, owner.pk) as owner_socket, connected(application, member.pk) as socket:
            for who in ("outsider", "staff"):
                denied = await sync_to_async(api(people[who]).post)("/im/groups/team/messages/", {"data": "x"},
                                                                   format="json")
                assert denied.status_code == 403
            sent = await sync_to_async(api(member).post)("/im/groups/team/messages/", {"data": {"text": "hi"}},
                                                         format="json")
            assert sent.status_code == 202 and sent.json() == {"group": "team", "id": sent.json()["id"]}
            frame = {"type": "chan", "id": sent.json()["id"], "chan": "team", "from": member.pk, "data": {"text": "hi"}}
            assert [await chan_frame(s) for s in (owner_socket, socket)] == [frame, frame]
            missing = await sync_to_async(api(member).post)("/im/groups/team/messages/", {}, format="json")
            assert missing.status_code == 400

    run(scenario)


def test_a_groups_chan_cannot_be_joined_or_left_through_the_core_api(people):
    online(people["outsider"])  # online, so only the guard can refuse
    for who, action in (("outsider", "join"), ("member", "leave")):
        answer = api(people[who]).post(f"/im/chans/team/{action}/")
        assert answer.status_code == 403 and answer.json()["code"] == "managed_chan"
    assert im.get_chan_client_list("team") == []
    assert api(people["outsider"]).post("/im/chans/not-a-group/join/").status_code == 200


def test_a_squatter_who_joined_before_the_group_existed_loses_the_chan_and_every_view_of_it(people):
    outsider, member = people["outsider"], people["member"]
    online(outsider, member)
    assert api(outsider).post("/im/chans/crew/join/").status_code == 200  # no group "crew" yet
    make_group("crew", member)
    assert im.get_chan_client_list("crew") == [member.pk]
    denied = api(outsider).post("/im/chans/crew/messages/", {"data": "still here?"}, format="json")
    assert denied.status_code == 403
    members = api(outsider).get("/im/chans/crew/members/")
    assert members.status_code == 403 and members.json()["code"] == "not_a_member"
    assert "crew" not in [c["chan"] for c in api(outsider).get("/im/chans/").json()["chans"]]
    assert api(member).get("/im/chans/crew/members/").json()["members"] == [member.pk]


@pytest.fixture
def group_created_while_joining():
    """Creates group ``late`` (with the members given) while the core join view first checks the chan: a single
    managed test, asked after the groups' batched test, creates it and answers no. Its creation commits, and its
    after-commit eviction runs, before the view joins: the interleaving the eviction alone cannot catch."""
    hooks = []

    def arrange(*members):
        def create_late_group(chan):
            if chan == "late" and not Group.objects.filter(slug="late").exists():
                make_group("late", *members)
            return False

        hooks.append(autojoin.manage(create_late_group))

    yield arrange
    for hook in hooks:
        autojoin.unmanage(hook)


def test_a_join_racing_the_groups_creation_leaves_no_squatter(people, group_created_while_joining):
    outsider = people["outsider"]
    online(outsider)
    group_created_while_joining(people["member"])
    answer = api(outsider).post("/im/chans/late/join/")
    assert answer.status_code == 403 and answer.json()["code"] == "managed_chan"
    assert im.get_chan_client_list("late") == []


def test_a_member_joining_as_its_group_is_created_stays_in_the_chan(people, group_created_while_joining):
    member = people["member"]
    online(member)
    group_created_while_joining(member)
    assert api(member).post("/im/chans/late/join/").json()["code"] == "managed_chan"
    assert im.get_chan_client_list("late") == [member.pk]


def test_listing_chans_tests_them_all_in_one_query(people, django_assert_num_queries):
    outsider, member = people["outsider"], people["member"]
    online(outsider, member)
    slugs = [f"group-{n}" for n in range(5)]
    for slug in slugs:
        make_group(slug, member)  # the online member joins at once
    im.join_chan(outsider.pk, "lobby", "cafe")
    with django_assert_num_queries(1):
        listed = api(outsider).get("/im/chans/").json()["chans"]
    assert sorted(c["chan"] for c in listed) == ["cafe", "lobby"]
    assert sorted(c["chan"] for c in api(member).get("/im/chans/").json()["chans"]) == sorted(["cafe", "lobby", *slugs])


def test_joining_runs_outside_atomic_requests(people, monkeypatch):
    """A request transaction would keep the second managed check on the first one's snapshot (SQLite, MySQL)."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    in_transaction = []

    def spy(chan):
        in_transaction.append(connection.in_atomic_block)
        return False

    autojoin.manage(spy)
    try:
        online(people["outsider"])
        assert api(people["outsider"]).post("/im/chans/lobby/join/").status_code == 200
        assert api(people["outsider"]).post("/im/chans/lobby/leave/").status_code == 200
    finally:
        autojoin.unmanage(spy)
    assert in_transaction == [False, False, True]  # join: both checks outside; leave (one check): inside


def test_adding_a_member_while_the_store_is_unreachable_adds_nothing(people, settings):
    """It saved the member, then failed on its presence (503): a retry got 400, already a member."""
    settings.FREEIM = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    answer = api(people["owner"]).post("/im/groups/team/members/", {"client_id": "bot"}, format="json")
    assert (answer.status_code, answer.json()["code"]) == (503, "store_unavailable")
    assert not Membership.objects.filter(client_id="bot").exists()  # so a retry is a retry


@pytest.mark.parametrize("number", ["{pk}.5", "{pk}.0", "1e400", "-1e400"])
def test_a_user_is_named_by_an_integer_only(people, number):
    """A float named the user it truncates to (2.5 added user 2); 1e400, which JSON parses as infinity, was a 500."""
    newbie = User.objects.create(username="newbie")
    body = f'{{"user": {number.format(pk=newbie.pk)}}}'
    answer = api(people["owner"]).post("/im/groups/team/members/", body, content_type="application/json")
    assert answer.status_code == 400 and "user" in answer.json(), answer.content
    assert not Membership.objects.filter(user=newbie).exists()
