"""The demo chat: per-tab login (by name or password), its tokens, the chat page, the user list's presence and
the presence notices.

tests/conftest.py gives every test a fresh backend.
"""

import importlib
import sys

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth.models import User
from django.db.models.signals import pre_save
from django.test import Client
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from demo_project.chat import tokens
from demo_project.chat.receivers import CHAT_META
from freeim import im
from freeim.testing import connected
from tests.asgi import application

LOGIN = "/demo/login/"
ME = "/demo/me/"


def log_in(client, name, password=""):
    """The tab's login: POST the form as the page's script does; the answer's JSON."""
    return client.post(LOGIN, {"name": name, "password": password}, content_type="application/json")


def token_of(name, client=None):
    answer = log_in(client or Client(), name)
    assert answer.status_code == 200, answer.json()
    return answer.json()["token"]


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def me(client, token):
    return client.get(ME, **bearer(token))


@pytest.mark.django_db
def test_picking_a_name_creates_the_user_once_and_answers_a_token_not_a_session():
    client = Client()
    first = log_in(client, "alice").json()
    log_in(client, "alice")
    user = User.objects.get(username="alice")
    assert User.objects.filter(username="alice").count() == 1 and not user.has_usable_password()
    assert first == {"token": first["token"], "id": user.pk, "name": "alice", "is_staff": False}
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_two_logins_in_one_browser_stay_two_users():
    """Tabs share the browser's cookies: with a session, bob's login switched alice's tab to bob."""
    browser = Client()
    alice, bob = token_of("alice", browser), token_of("bob", browser)
    assert me(browser, alice).json()["name"] == "alice"
    assert me(browser, bob).json()["name"] == "bob"


#: Users a name must not be enough for: a login of theirs could broadcast and force users offline.
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
    answer = log_in(Client(), "root")
    assert answer.status_code == 400 and answer.json() == {
        "password": ["This user has a password or staff rights: give its password."]}


@pytest.mark.django_db
def test_users_with_a_password_log_in_with_it():
    User.objects.create_superuser("root", password="secret")
    answer = log_in(Client(), "root", "secret")
    assert answer.status_code == 200 and answer.json()["is_staff"] is True
    assert me(Client(), answer.json()["token"]).json()["name"] == "root"
    wrong = log_in(Client(), "root", "guess")
    assert wrong.status_code == 400 and wrong.json() == {"password": ["Wrong name or password."]}


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"name": "no spaces allowed"}, {"name": ""}, {}, {"name": "x" * 151}])
def test_a_bad_name_is_a_field_error(body):
    answer = Client().post(LOGIN, body, content_type="application/json")
    assert answer.status_code == 400 and list(answer.json()) == ["name"]
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["[1]", '"alice"', "null", "{", "1"])
def test_a_body_that_is_not_an_object_is_a_400(body):
    answer = Client().post(LOGIN, body, content_type="application/json")
    assert answer.status_code == 400 and "detail" in answer.json()


def changed(**fields):
    """A change to alice, after which her token stops working."""
    def change(alice, token):
        User.objects.filter(pk=alice.pk).update(**fields)
        return token
    return change


def set_password(alice, token):
    alice.set_password("secret")
    alice.save()
    return token


#: Ways a tab's token stops working once alice logged in by name: ``(alice, her token) -> the token then sent``.
REVOKED = {
    "password set": set_password,
    "made staff": changed(is_staff=True),
    "deactivated": changed(is_active=False),
    "deleted": lambda alice, token: alice.delete() and token,
    "tampered": lambda alice, token: token[:-1] + ("A" if token[-1] != "A" else "B"),
    "not a token": lambda alice, token: "hello",
}


@pytest.mark.django_db
@pytest.mark.parametrize("revoke", REVOKED.values(), ids=REVOKED.keys())
def test_a_token_stops_working_with_401(revoke):
    token = token_of("alice")
    answer = me(Client(), revoke(User.objects.get(username="alice"), token))
    assert answer.status_code == 401 and "detail" in answer.json()
    assert answer["WWW-Authenticate"] == 'Bearer realm="api"'


def test_bearer_without_a_token_is_refused(client):
    assert client.get(ME, HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.django_db
def test_a_token_expires(monkeypatch):
    token = token_of("alice")
    monkeypatch.setattr(tokens, "MAX_AGE", -1)
    answer = me(Client(), token)
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]


@pytest.mark.django_db
def test_a_bad_token_never_falls_back_to_the_session():
    """The browser's session cookie (an admin login) must not speak for a tab whose token failed."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="secret"))
    assert tokens.TabTokenAuthentication().authenticate_header(None) == 'Bearer realm="api"'
    assert me(client, "forged").status_code == 401
    assert client.get(ME).status_code == 401  # the page's own endpoints take the tab's token only


@pytest.mark.django_db
def test_the_page_has_the_login_form_the_chat_and_their_scripts():
    page = Client().get("/").content.decode()
    for part in ('id="login-form"', 'name="name"', 'name="password"', 'id="chat"', 'id="chat-config"',
                 '<script src="/static/freeim/freeim.js"></script>', '<script src="/static/chat/tab.js"></script>',
                 'href="/admin/"'):
        assert part in page
    assert Client().post("/").status_code == 405


@pytest.mark.django_db
def test_users_needs_a_token():
    response = Client().get("/demo/users/")
    assert response.status_code == 401 and "detail" in response.json()


@pytest.fixture
def demo_admin():
    """The demo's admin module, imported as the demo's autodiscovery does (the suite's does not know the chat
    app); the admin site is the process's, so auth's Group is registered again afterwards."""
    from django.contrib import admin
    from django.contrib.auth.admin import GroupAdmin
    from django.contrib.auth.models import Group

    if not admin.site.is_registered(Group):
        admin.site.register(Group, GroupAdmin)
    header = admin.site.site_header
    sys.modules.pop("demo_project.chat.admin", None)
    importlib.import_module("demo_project.chat.admin")
    yield
    if not admin.site.is_registered(Group):
        admin.site.register(Group, GroupAdmin)
    admin.site.site_header = admin.site.site_title = header


@pytest.mark.django_db
def test_the_demo_admin_shows_chat_groups_and_no_permission_groups_beside_them(demo_admin):
    staff = Client()
    staff.force_login(User.objects.create_superuser("root", password="secret"))
    index = staff.get("/admin/").content.decode()
    assert ">Chat groups<" in index and ">Users<" in index and "freeim demo administration" in index
    assert ">Groups<" not in index and "/admin/auth/group/" not in index


# The socket tests run their async part under async_to_sync: asgiref then runs the database
# work of the async ORM (the presence receivers') back on this thread, on the test database's
# connection. An async test would leave a connection open in asgiref's executor thread, where
# it outlives the test and breaks later tests that have no database access.


@pytest.mark.django_db
def test_users_lists_presence_from_one_batched_lookup(monkeypatch):
    alice = User.objects.create(username="alice")
    bob = User.objects.create_user("bob")  # no usable password: a user the name form made
    client, token = Client(), tokens.issue(bob, by_name=True)
    calls = []
    real_has_online = im.has_online
    monkeypatch.setattr(im, "has_online", lambda ids: calls.append(ids) or real_has_online(ids))

    async def with_alice_online():
        async with connected(application, alice.pk):
            return await sync_to_async(client.get)("/demo/users/", **bearer(token))

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


# --- from an attacker's trial ---------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(("body", "status"), [
    ("[" * 100_000, 400),  # a RecursionError: 500
    ('{"name": ' + "[" * 5000 + "]" * 5000 + "}", 400),
    ('{"name": "carol", "password": "\\ud800"}', 400),  # a lone surrogate: a UnicodeEncodeError in the hasher, 500
    ('{"name": "' + "x" * 3_000_000 + '"}', 413),  # an HTML 400 from Django
])
def test_any_login_body_gets_a_json_answer(body, status):
    User.objects.create_user("carol", password="secret-1")
    answer = Client().post(LOGIN, body, content_type="application/json")
    assert answer.status_code == status and answer["Content-Type"] == "application/json", answer.content[:300]


@pytest.mark.django_db
def test_an_inactive_user_gets_no_token_by_name():
    User.objects.create(username="gone", password="!", is_active=False)
    answer = log_in(Client(), "gone")
    assert answer.status_code == 400 and "token" not in answer.json()


@pytest.mark.django_db
@pytest.mark.parametrize("look_alike", ["Admin", "ADMIN", "ａｄｍｉｎ"])  # fullwidth letters: NFKC makes them "admin"
def test_a_staff_name_cannot_be_taken_in_another_case_or_form(look_alike):
    User.objects.create_superuser("admin", password="secret-1")
    answer = log_in(Client(), look_alike)
    assert answer.status_code == 400 and "password" in answer.json()
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_a_name_logs_in_as_the_user_it_names_in_any_case():
    alice = token_of("alice")
    assert me(Client(), token_of("ALICE")).json()["id"] == me(Client(), alice).json()["id"]
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_a_new_users_first_save_already_has_no_usable_password():
    """It was saved with password '' (usable, to Django) and made unusable in a second save: a login racing for the
    same new name in between saw a user with a password and was refused (13 of 16 at once, in the trial)."""
    saved = []

    def record(instance, **kwargs):
        saved.append(instance.has_usable_password())

    pre_save.connect(record, sender=User)
    try:
        assert log_in(Client(), "racer").status_code == 200
    finally:
        pre_save.disconnect(record, sender=User)
    assert saved == [False]


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["Bearer\t", "Bearer  "])
def test_a_bearer_header_with_other_whitespace_is_still_the_tabs(scheme):
    """"Bearer<TAB>token" was read as no token at all, so the next authentication class (the session cookie, in the
    demo's settings) spoke for the tab: a staff list of who is online answered 200 to a forged token."""
    request = Request(APIRequestFactory().get("/im/online/", HTTP_AUTHORIZATION=f"{scheme}forged"))
    with pytest.raises(AuthenticationFailed):
        tokens.TabTokenAuthentication().authenticate(request)


@pytest.mark.parametrize("version", ["%0A", "%0D", "a%0Ab"])
def test_the_schema_ignores_a_version_in_its_query(client, version):
    """drf-spectacular puts ?version= into the answer's Content-Disposition: a newline there was a 500, to anyone."""
    answer = client.get(f"/im/schema/?version={version}")
    assert answer.status_code == 200 and "\n" not in answer["Content-Disposition"]


@pytest.mark.django_db
def test_a_name_two_users_share_but_for_case_logs_in_as_the_exact_one_or_is_refused():
    """Users made before names were matched in any case (or by the admin) may differ only in case: get_or_create
    on the case-blind lookup raised MultipleObjectsReturned, a 500."""
    carol = User.objects.create(username="carol", password="!")
    User.objects.create(username="Carol", password="!")
    assert me(Client(), token_of("carol")).json()["id"] == carol.pk  # the exact name wins
    answer = log_in(Client(), "CAROL")
    assert answer.status_code == 400 and "name" in answer.json()
