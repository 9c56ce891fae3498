"""The history API: conversations with unread counts, cursor pages, who may read what, bad input."""

import base64
import urllib.parse

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from freeim import im
from tests.groups.helpers import add, make_group
from tests.presence import online

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def history(settings):
    settings.FREEIM = {"HISTORY": "freeim.history.store.ModelHistory"}


@pytest.fixture
def users():
    return {name: User.objects.create(username=name, is_staff=name == "staff")
            for name in ("alice", "bob", "carol", "staff")}


def api(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.mark.parametrize("path", ["/im/history/conversations/", "/im/history/conversations/1/",
                                  "/im/history/chans/room/"])
def test_every_endpoint_needs_authentication(path):
    assert api().get(path).status_code == 401


def test_conversations_list_the_peers_newest_first_with_unread_counts_and_the_last_message(users):
    alice, bob, carol = (users[n].pk for n in ("alice", "bob", "carol"))
    first = im.send_message(bob, alice, {"text": "hi alice"})
    im.send_message(bob, alice, {"text": "are you there?"})
    im.send_message(alice, carol, {"text": "hi carol"})
    im.send_message(carol, bob, "not alice's")
    im.mark_read(alice, [first])
    conversations = api(users["alice"]).get("/im/history/conversations/").json()
    assert [(c["peer"], c["unread"], c["last"]["data"]) for c in conversations] == [
        (carol, 0, {"text": "hi carol"}), (bob, 1, {"text": "are you there?"})]
    assert conversations[1]["last"]["from"] == bob and conversations[1]["last"]["to"] == alice


def test_a_conversation_pages_both_ways_newest_first_with_cursors(users):
    alice, bob = users["alice"].pk, users["bob"].pk
    sent = [im.send_message(*((alice, bob) if n % 2 else (bob, alice)), {"n": n}, key=f"k{n}") for n in range(7)]
    im.send_message(users["carol"].pk, alice, "another conversation")
    client = api(users["alice"])
    page = client.get(f"/im/history/conversations/{bob}/?limit=3").json()
    seen = []
    while True:
        seen += [(m["id"], m["from"], m["data"]["n"], m["read_at"]) for m in page["results"]]
        if not page["next"]:
            break
        page = client.get(page["next"]).json()
    assert seen == [(sent[n], alice if n % 2 else bob, n, None) for n in reversed(range(7))]
    assert client.get(f"/im/history/conversations/{bob}/").json()["results"][0]["to"] == alice  # n = 6: from bob


def test_a_read_shows_on_the_senders_copy(users):
    alice, bob = users["alice"].pk, users["bob"].pk
    message = im.send_message(alice, bob, "read me", receipt=True)
    assert api(users["bob"]).post("/im/messages/read/", {"ids": [message]}, format="json").status_code == 200
    [mine] = api(users["alice"]).get(f"/im/history/conversations/{bob}/").json()["results"]
    assert mine["id"] == message and mine["read_at"] is not None


def test_a_send_retried_with_its_key_is_kept_once(users):
    alice, bob = users["alice"].pk, users["bob"].pk
    body = {"to": [bob], "data": "once", "key": "tab-1:42"}
    answers = [api(users["alice"]).post("/im/messages/", body, format="json").json() for _ in range(2)]
    assert answers[0]["id"] == answers[1]["id"]
    assert len(api(users["bob"]).get(f"/im/history/conversations/{alice}/").json()["results"]) == 1
    other = api(users["carol"]).post("/im/messages/", {**body, "to": [alice]}, format="json").json()
    assert other["id"] != answers[0]["id"]  # a key is the sender's own
    padded = api(users["alice"]).post("/im/messages/", {**body, "key": " tab-1:42 "}, format="json").json()
    assert padded["id"] != answers[0]["id"]  # a key is taken as given, never trimmed


def test_chan_history_is_for_its_members_group_members_even_offline_and_staff(users):
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    online(alice)
    im.join_chan(alice.pk, "room")
    sent = [api(alice).post("/im/chans/room/messages/", {"data": n}, format="json").json()["id"] for n in range(3)]
    assert [m["id"] for m in api(alice).get("/im/history/chans/room/").json()["results"]] == sent[::-1]
    assert api(bob).get("/im/history/chans/room/").json()["code"] == "not_a_member"
    assert api(users["staff"]).get("/im/history/chans/room/").status_code == 200
    add(make_group("team"), carol)
    im.send_chan_message("boss", "team", {"text": "for the team"})
    [kept] = api(carol).get("/im/history/chans/team/").json()["results"]  # carol is not online
    assert (kept["chan"], kept["from"], kept["data"]) == ("team", "boss", {"text": "for the team"})
    assert api(bob).get("/im/history/chans/team/").status_code == 403


@pytest.mark.parametrize("path", ["/im/history/conversations/x%0Ay/", "/im/history/chans/no%20spaces/",
                                  f"/im/history/conversations/{'9' * 200}/"])
def test_bad_ids_and_chan_names_are_400(users, path):
    answer = api(users["alice"]).get(path)
    assert answer.status_code == 400 and answer.json()["code"] in ("invalid_client_id", "invalid_chan")


# The cursors: "p=abc", "p=1.5", "p=" and "p=<4,301 nines>" in base64 (positions that are not ids: the last was a
# 500, past Python's int() digit limit), and one that is not base64.
HUGE_POSITION = urllib.parse.quote(base64.b64encode(b"p=" + b"9" * 4301).decode())


@pytest.mark.parametrize("query", ["?limit=100000", "?limit=-1", "?limit=x", "?cursor=garbage", "?cursor=cD1hYmM%3D",
                                   "?cursor=cD0xLjU%3D", "?cursor=cD0%3D", f"?cursor={HUGE_POSITION}"])
def test_odd_paging_queries_are_bounded_or_refused(users, query):
    alice, bob = users["alice"].pk, users["bob"].pk
    for n in range(3):
        im.send_message(bob, alice, n)
    answer = api(users["alice"]).get(f"/im/history/conversations/{bob}/{query}")
    assert answer.status_code == 404 if "cursor" in query else len(answer.json()["results"]) == 3


def test_without_a_history_nothing_is_kept(users, settings):
    settings.FREEIM = {}
    im.send_message(users["bob"].pk, users["alice"].pk, "not kept")
    assert api(users["alice"]).get("/im/history/conversations/").json() == []
