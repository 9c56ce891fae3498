"""The demo chat: name login, the chat page, the user list's presence and the presence notices.

tests/conftest.py gives every test a fresh backend.
"""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from demo_project.chat.receivers import CHAT_META
from freeim import im
from freeim.testing import connected
from tests.asgi import application


def logged_in(name):
    client = Client()
    assert client.post("/", {"name": name}).status_code == 302
    return client


@pytest.mark.django_db
def test_picking_a_name_creates_the_user_once_and_logs_in():
    first = logged_in("alice")
    logged_in("alice")
    user = User.objects.get(username="alice")
    assert User.objects.filter(username="alice").count() == 1 and not user.has_usable_password()
    assert int(first.session["_auth_user_id"]) == user.pk


#: Users a name must not be enough for: a session of theirs could broadcast and force users offline.
GUARDED_USERS = {
    "superuser": lambda: User.objects.create_superuser("root", password="secret"),
    "staff": lambda: User.objects.create_user("root", password="secret", is_staff=True),
    "staff without a password": lambda: User.objects.create(username="root", is_staff=True),
    "with a password": lambda: User.objects.create_user("root", password="secret"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("make", GUARDED_USERS.values(), ids=GUARDED_USERS.keys())
def test_only_users_without_a_password_and_staff_rights_log_in_by_name(make):
    make()
    response = Client().post("/", {"name": "root"})
    assert response.status_code == 200 and "log in with its password at /admin/" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


@pytest.mark.django_db
def test_staff_see_a_link_to_the_admin_and_everyone_a_groups_list():
    staff = Client()
    staff.force_login(User.objects.create_superuser("root", password="secret"))
    assert 'href="/admin/"' in staff.get("/").content.decode()
    page = logged_in("alice").get("/").content.decode()
    assert 'href="/admin/"' not in page and 'id="groups"' in page


@pytest.mark.django_db
def test_a_bad_name_shows_the_form_again():
    response = Client().post("/", {"name": "no spaces allowed"})
    assert response.status_code == 200 and b"Pick a name" in response.content
    assert not User.objects.exists()


@pytest.mark.django_db
def test_index_shows_the_login_form_then_the_chat_page():
    assert b'name="name"' in Client().get("/").content
    page = logged_in("alice").get("/").content.decode()
    assert '<script src="/static/freeim/freeim.js"></script>' in page
    assert "alice" in page and 'id="chat-config"' in page


@pytest.mark.django_db
def test_logout_needs_post_and_logs_out():
    client = logged_in("alice")
    assert client.get("/logout/").status_code == 405
    client.post("/logout/")
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_users_needs_login():
    response = Client().get("/demo/users/")
    assert response.status_code == 403 and "detail" in response.json()


# The socket tests run their async part under async_to_sync: asgiref then runs the database
# work of the async ORM (the presence receivers') back on this thread, on the test database's
# connection. An async test would leave a connection open in asgiref's executor thread, where
# it outlives the test and breaks later tests that have no database access.


@pytest.mark.django_db
def test_users_lists_presence_from_one_batched_lookup(monkeypatch):
    alice = User.objects.create(username="alice")
    bob = User.objects.create(username="bob")
    client = Client()
    client.force_login(bob)
    calls = []
    real_has_online = im.has_online
    monkeypatch.setattr(im, "has_online", lambda ids: calls.append(ids) or real_has_online(ids))

    async def with_alice_online():
        async with connected(application, alice.pk):
            return await sync_to_async(client.get)("/demo/users/")

    assert async_to_sync(with_alice_online)().json() == [
        {"id": alice.pk, "name": "alice", "online": True}, {"id": bob.pk, "name": "bob", "online": False}]
    assert calls == [[alice.pk, bob.pk]]


@pytest.mark.django_db
def test_chat_terminals_coming_and_going_are_broadcast():
    alice, bob, carol = (User.objects.create(username=name) for name in ("alice", "bob", "carol"))

    async def scenario():
        async with connected(application, bob.pk, meta=CHAT_META) as watcher:
            assert (await watcher.receive_frame())["data"]["id"] == bob.pk  # its own notice
            async with (connected(application, carol.pk, meta="script"),  # not a chat page: no notice
                        connected(application, alice.pk, meta=CHAT_META)):
                assert await watcher.receive_frame() == {
                    "type": "broadcast", "data": {"event": "online", "id": alice.pk, "name": "alice"}}
            assert await watcher.receive_frame() == {
                "type": "broadcast", "data": {"event": "offline", "id": alice.pk, "name": "alice"}}
            assert await watcher.receive_nothing()

    async_to_sync(scenario)()
