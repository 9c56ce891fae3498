"""The REST API: authentication, permissions, validation and effects on real sockets."""

import asyncio
import base64

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from freeim import autojoin, im
from freeim.protocol import MAX_JSON_DEPTH
from freeim.testing import FreeIMCommunicator, connected
from tests.asgi import application
from tests.frames import unpositioned
from tests.groups.helpers import make_group, run
from tests.presence import online

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(user=None):
    client = APIClient()
    if user is not None:
        token = base64.b64encode(f"{user.username}:pw".encode()).decode()
        client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


@pytest.fixture
def users():
    make = User.objects.create_user
    return {"alice": make("alice", password="pw"), "bob": make("bob", password="pw"),
            "staff": make("staff", password="pw", is_staff=True)}


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/im/connect/"), ("post", "/im/messages/"), ("get", "/im/online/"), ("get", "/im/online/1/"),
    ("post", "/im/online/1/offline/"), ("get", "/im/chans/"), ("post", "/im/chans/room/join/"),
    ("post", "/im/chans/room/leave/"), ("get", "/im/chans/room/members/"), ("post", "/im/chans/room/messages/"),
    ("post", "/im/broadcast/"),
])
def test_every_endpoint_needs_authentication(method, path):
    response = getattr(client_for(), method)(path, {}, format="json")
    assert response.status_code == 401 and "detail" in response.json()
    assert response["WWW-Authenticate"].startswith("Basic")


def test_wrong_password_is_401(users):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"alice:nope").decode())
    assert client.post("/im/connect/", {}, format="json").status_code == 401


@pytest.mark.parametrize(("method", "path"), [("get", "/im/online/"), ("post", "/im/online/1/offline/"),
                                              ("post", "/im/broadcast/")])
def test_staff_only_endpoints_refuse_others(users, method, path):
    response = getattr(client_for(users["alice"]), method)(path, {"data": 1}, format="json")
    assert response.status_code == 403


def test_connect_uses_the_request_host_and_the_callers_id(users):
    response = client_for(users["alice"]).post("/im/connect/", {"meta": "web", "client_id": 999}, format="json",
                                               HTTP_HOST="chat.local:8123")
    body = response.json()
    assert response.status_code == 200
    assert body["client_id"] == users["alice"].pk and body["server"] == "local"
    assert body["url"].startswith("ws://chat.local:8123/ws?token=")
    secure = client_for(users["alice"]).post("/im/connect/", format="json", secure=True, HTTP_HOST="chat.local")
    assert secure.json()["url"].startswith("wss://chat.local/ws?token=")


@pytest.mark.parametrize(("since", "status"), [("*", 200), ("9e718890.17", 200), ("17", 400), ("x.1", 400),
                                               ("9e718890.17" * 5, 400), (17, 400)])
def test_connect_takes_the_position_to_resume_from_and_refuses_anything_else(users, since, status):
    response = client_for(users["alice"]).post("/im/connect/", {"since": since}, format="json")
    assert response.status_code == status, response.json()
    if status == 400:
        assert "since" in response.content.decode()  # the field, or the message, says what is wrong


@pytest.mark.parametrize(("body", "status"), [({"ids": ["m1"]}, 200), ({"ids": []}, 400), ({"ids": "m1"}, 400),
                                              ({"ids": [{"a": 1}]}, 400), ({"ids": ["x" * 65]}, 400), ({}, 400)])
def test_read_takes_a_list_of_message_ids(users, body, status):
    response = client_for(users["alice"]).post("/im/messages/read/", body, format="json")
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"receipts": 0}  # nothing in alice's inbox asked for one


@pytest.mark.parametrize(("chans_since", "status"), [({"room": "*"}, 200), ({f"c{n}": "*" for n in range(101)}, 400),
                                                     ({"room": "17"}, 400), ({"bad name": "*"}, 400), (["room"], 400)])
def test_connect_takes_chan_positions_up_to_max_chans_per_client(users, chans_since, status):
    response = client_for(users["alice"]).post("/im/connect/", {"chans_since": chans_since}, format="json")
    assert response.status_code == status, response.json()


@pytest.mark.parametrize(("join", "status"), [(["room"], 200), ([f"c{n}" for n in range(101)], 400),
                                              (["bad name"], 400), ("room", 400), ([["room"]], 400)])
def test_connect_takes_chans_to_join_up_to_max_chans_per_client(users, join, status):
    response = client_for(users["alice"]).post("/im/connect/", {"join": join}, format="json")
    assert response.status_code == status, response.json()


def chans_once_open(user, connect_answer):
    """The chans ``user`` is in once the socket of a ``connect/`` answer is open."""
    async def scenario():
        socket = FreeIMCommunicator(application, connect_answer.json()["url"])
        assert (await socket.connect())[0]
        try:
            return await im.aget_chan_list_by_client_id(user.pk)
        finally:
            await socket.disconnect()

    return run(scenario)


def test_a_join_at_connect_leaves_out_chans_the_server_manages(users):
    alice = users["alice"]
    make_group("team")  # alice is not a member
    answer = client_for(alice).post("/im/connect/", {"join": ["team", "lobby"]}, format="json")
    assert chans_once_open(alice, answer) == ["lobby"]


def test_a_chan_that_became_managed_after_the_ticket_is_not_joined_when_the_socket_opens(users):
    """The token named a plain chan; a group took its name before the socket opened, and its take-over found
    nobody to evict: the late join made a non-member a member of the group's chan."""
    alice = users["alice"]
    answer = client_for(alice).post("/im/connect/", {"join": ["vault", "lobby"]}, format="json")
    make_group("vault")  # alice is not a member
    assert chans_once_open(alice, answer) == ["lobby"]


def test_connect_with_configured_servers(users, settings):
    settings.FREEIM = {"SERVERS": ["wss://im.example.com"]}
    body = client_for(users["alice"]).post("/im/connect/", format="json").json()
    assert body["url"].startswith("wss://im.example.com/ws?token=") and body["server"] == "wss://im.example.com"


@pytest.mark.parametrize("body", [{}, {"to": [], "data": 1}, {"to": [True], "data": 1}, {"to": "bob", "data": 1},
                                  {"to": [2]}, {"to": [2], "data": 1, "receipt": "maybe"}])
def test_messages_validate_the_body(users, body):
    response = client_for(users["alice"]).post("/im/messages/", body, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("digits", [129, 4300])
def test_int_receivers_longer_than_max_client_id_length_are_400(users, digits):
    body = '{"to": [' + "9" * digits + '], "data": 1}'
    response = client_for(users["alice"]).post("/im/messages/", body, content_type="application/json")
    assert response.status_code == 400 and "at most 128 characters long" in response.json()["to"]["0"][0]


def test_malformed_json_is_400(users):
    response = client_for(users["alice"]).post("/im/messages/", "{not json", content_type="application/json")
    assert response.status_code == 400


def test_oversized_message_is_400_with_code(users):
    response = client_for(users["alice"]).post("/im/messages/", {"to": [1], "data": "x" * 70_000}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_message"


#: Every endpoint that takes a message, as the caller of ``member`` may use them.
MESSAGE_PATHS = ["/im/messages/", "/im/chans/room/messages/", "/im/groups/crew/messages/"]


@pytest.fixture
def member(users):
    """alice's client, alice online and in chan ``room`` and group ``crew``: she may post to every MESSAGE_PATH."""
    online(users["alice"])
    im.join_chan(users["alice"].pk, "room")
    make_group("crew", users["alice"])
    return client_for(users["alice"])


def nested_body(depth):
    """A message body nested ``depth`` levels deep in all (the body object is the first)."""
    return '{"to": [2], "data": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("path", MESSAGE_PATHS)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 990, 100_000])
def test_json_nested_too_deep_is_400_too_deep(member, path, depth):
    response = member.post(path, nested_body(depth), content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "too_deep"


@pytest.mark.parametrize("path", MESSAGE_PATHS)
def test_json_nested_to_the_limit_is_accepted(member, path):
    assert member.post(path, nested_body(MAX_JSON_DEPTH), content_type="application/json").status_code == 202


@pytest.mark.parametrize("path", MESSAGE_PATHS)
def test_a_body_over_the_upload_limit_is_413_json(member, path, settings):
    body = '{"to": [2], "data": "' + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + '"}'
    response = member.post(path, body, content_type="application/json")
    assert response.status_code == 413 and response.json()["code"] == "request_too_large"


def test_a_lone_surrogate_is_400_invalid_message(users):
    body = b'{"to": [2], "data": {"text": "\\ud800"}}'  # valid JSON for a string no UTF-8 can encode
    response = client_for(users["alice"]).post("/im/messages/", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_message"


async def test_message_is_sent_from_the_caller_never_the_body(users):
    alice, bob = users["alice"], users["bob"]
    async with connected(application, bob.pk) as bob_socket:
        response = await asyncio.to_thread(
            client_for(alice).post, "/im/messages/", {"to": [bob.pk], "data": {"t": "hi"}, "from": 999},
            format="json")
        assert response.status_code == 202
        got = unpositioned(await bob_socket.receive_frame())
        assert got == {"type": "message", "id": response.json()["id"], "from": alice.pk, "data": {"t": "hi"}}


def test_online_endpoints(users):
    online(users["bob"])
    staff = client_for(users["staff"])
    assert staff.get("/im/online/").json() == {"clients": [users["bob"].pk], "next": None}
    alice = client_for(users["alice"])
    assert alice.get(f"/im/online/{users['bob'].pk}/").json() == {"client_id": users["bob"].pk, "online": True}
    assert alice.get("/im/online/nobody/").json() == {"client_id": "nobody", "online": False}
    assert alice.get("/im/online/" + "x" * 200 + "/").status_code == 400


async def test_force_offline_by_staff_closes_sockets(users):
    bob = await FreeIMCommunicator.open(application, users["bob"].pk)
    response = await asyncio.to_thread(client_for(users["staff"]).post, f"/im/online/{users['bob'].pk}/offline/")
    assert response.status_code == 202
    assert await bob.receive_close() == 4000
    await bob.disconnect()


def test_chan_join_leave_members_and_list(users):
    alice = client_for(users["alice"])
    assert alice.post("/im/chans/room/join/").status_code == 409  # no socket yet
    online(users["alice"])
    assert alice.post("/im/chans/room/join/").json() == {"chan": "room", "online": 1}
    assert alice.get("/im/chans/").json() == {"chans": [{"chan": "room", "online": 1}], "next": None}
    assert alice.get("/im/chans/room/members/").json() == {"chan": "room", "members": [users["alice"].pk]}
    assert alice.post("/im/chans/room/leave/").json() == {"chan": "room", "online": 0}
    assert alice.get("/im/chans/").json() == {"chans": [], "next": None}


def test_the_online_clients_and_the_chans_are_listed_a_page_at_a_time(users):
    online(users["alice"], users["bob"], users["staff"])
    for user in ("alice", "bob"):
        im.join_chan(users[user].pk, f"room-{user}")
    staff = client_for(users["staff"])

    def every_page(path, key):
        found, query = [], {"count": 1}
        while True:
            page = staff.get(path, query).json()
            found.append(page[key])
            if page["next"] is None:
                return found
            query = {"count": 1, "cursor": page["next"]}

    assert sorted(every_page("/im/online/", "clients")) == sorted([[user.pk] for user in users.values()])
    assert every_page("/im/chans/", "chans") == [[{"chan": "room-alice", "online": 1}],
                                                  [{"chan": "room-bob", "online": 1}]]
    for query in ({"count": 0}, {"count": 10_001}, {"count": "x"}, {"cursor": "x" * 65}):
        refused = staff.get("/im/online/", query)
        assert refused.status_code == 400 and set(refused.json()) == set(query)


@pytest.mark.parametrize("chan", ["bad%20name", "x" * 101, "caf%C3%A9"])
def test_invalid_chan_names_are_400(users, chan):
    response = client_for(users["alice"]).get(f"/im/chans/{chan}/members/")
    assert response.status_code == 400 and response.json()["code"] == "invalid_chan"


async def test_chan_messages_only_from_members(users):
    alice, bob = users["alice"], users["bob"]
    async with connected(application, alice.pk) as alice_socket:
        await im.ajoin_chan(alice.pk, "room")
        denied = await asyncio.to_thread(client_for(bob).post, "/im/chans/room/messages/", {"data": "x"},
                                         format="json")
        assert denied.status_code == 403
        sent = await asyncio.to_thread(client_for(alice).post, "/im/chans/room/messages/", {"data": "hello"},
                                       format="json")
        assert sent.status_code == 202
        assert unpositioned(await alice_socket.receive_frame()) == {"type": "chan", "id": sent.json()["id"],
                                                                    "chan": "room", "from": alice.pk, "data": "hello"}


async def test_broadcast_by_staff_reaches_sockets(users):
    async with connected(application, users["alice"].pk) as alice_socket:
        response = await asyncio.to_thread(client_for(users["staff"]).post, "/im/broadcast/", {"data": [1, 2]},
                                           format="json")
        assert response.status_code == 202
        assert await alice_socket.receive_frame() == {"type": "broadcast", "data": [1, 2]}
        missing = await asyncio.to_thread(client_for(users["staff"]).post, "/im/broadcast/", {}, format="json")
        assert missing.status_code == 400


def test_a_message_times_its_receivers_past_max_fanout_bytes_is_413_with_code(users):
    response = client_for(users["alice"]).post(
        "/im/messages/", {"to": list(range(1000, 2000)), "data": "x" * 60_000, "receipt": True}, format="json")
    assert response.status_code == 413 and response.json()["code"] == "fanout_too_large"


@pytest.fixture(params=["single", "batched"])
def team_chans_managed(request):
    """Chans named ``team-*`` are managed, through a single test (``autojoin.manage``) or a batched one."""
    def is_team_chan(chan):
        return chan.startswith("team-")

    def team_chans_among(chans):
        return {chan for chan in chans if is_team_chan(chan)}

    add, remove = ((autojoin.manage, autojoin.unmanage) if request.param == "single"
                   else (autojoin.manage_many, autojoin.unmanage_many))
    test = add(is_team_chan if request.param == "single" else team_chans_among)
    yield
    remove(test)


def test_managed_chans_and_their_members_are_shown_to_their_members_and_staff_only(users, team_chans_managed):
    alice, bob = users["alice"], users["bob"]
    online(alice), online(bob)
    im.join_chan(alice.pk, "team-1", "room")
    im.join_chan(bob.pk, "room")
    listed = {who: sorted(c["chan"] for c in client_for(user).get("/im/chans/").json()["chans"])
              for who, user in users.items()}
    assert listed == {"alice": ["room", "team-1"], "bob": ["room"], "staff": ["room", "team-1"]}
    for who in ("alice", "staff"):
        assert client_for(users[who]).get("/im/chans/team-1/members/").json() == {"chan": "team-1",
                                                                                  "members": [alice.pk]}
    denied = client_for(bob).get("/im/chans/team-1/members/")
    assert denied.status_code == 403 and denied.json()["code"] == "not_a_member"
    assert client_for(bob).get("/im/chans/team-2/members/").status_code == 403  # empty or not, managed is managed
    assert sorted(client_for(bob).get("/im/chans/room/members/").json()["members"]) == sorted([alice.pk, bob.pk])


def test_an_unknown_path_under_the_api_is_a_json_404(users):
    for path in ("/im/nope/", "/im/online/a%2Fb/", "/im/chans/room/nope/"):
        response = client_for(users["alice"]).get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found", path


def test_null_is_json_data_like_any_other(users):
    online(users["bob"])
    response = client_for(users["alice"]).post("/im/messages/", {"to": [users["bob"].pk], "data": None}, format="json")
    assert response.status_code == 202


def test_a_non_member_posting_to_a_chan_gets_403_not_a_member(users):
    response = client_for(users["alice"]).post("/im/chans/room/messages/", {"data": "hi"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "not_a_member"
