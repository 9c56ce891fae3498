"""The groups admin through Django's test client: pages render, presence is batched, actions reach real sockets."""

import re
from unittest.mock import ANY

import pytest
from asgiref.sync import sync_to_async
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.test import Client

from freeim import im
from freeim.backends import get_backend
from freeim.groups import admin_pages
from freeim.groups.models import Group, Membership
from freeim.testing import FreeIMCommunicator, connected
from tests.asgi import application
from tests.groups.helpers import chan_frame, make_group, run, silent
from tests.presence import online
from tests.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)
GROUPS = "/admin/freeim_groups/group/"
MEMBERS = "/admin/freeim_groups/membership/"
ONLINE = f"{GROUPS}online/"
LIVEOPS = f"{GROUPS}liveops/"
LIVEOPS_STATUS = f"{LIVEOPS}status/"


@pytest.fixture
def users():
    return {name: User.objects.create(username=name) for name in ("alice", "bob", "carol")}


@pytest.fixture
def staff():
    client = Client()
    client.user = User.objects.create(username="root", is_staff=True, is_superuser=True)
    client.force_login(client.user)
    return client


def post(client, path, data):
    """A POST from the admin's thread of the scenario (the test's thread, with its database)."""
    return sync_to_async(client.post)(path, data)


def add_form(slug, *members, title="Team", active=True):
    """The admin's add/change form of a group, adding ``members`` (users) through the "add members" rows."""
    data = {"slug": slug, "title": title, "description": "", "memberships-TOTAL_FORMS": 0,
            "memberships-INITIAL_FORMS": 0, "memberships-2-TOTAL_FORMS": len(members),
            "memberships-2-INITIAL_FORMS": 0}
    if active:
        data["is_active"] = "on"
    for index, user in enumerate(members):
        data |= {f"memberships-2-{index}-user": user.pk, f"memberships-2-{index}-client_id": "",
                 f"memberships-2-{index}-role": "member"}
    return data


def test_every_page_renders(staff, users):
    group = make_group("team", *users.values(), "sensor-1")
    make_group("closed", users["alice"], is_active=False)
    pages = [GROUPS, f"{GROUPS}?q=tea", f"{GROUPS}?is_active__exact=0", f"{GROUPS}add/",
             f"{GROUPS}{group.pk}/change/", MEMBERS, f"{MEMBERS}?role__exact=member&q=sensor",
             f"{MEMBERS}{Membership.objects.first().pk}/change/", f"{MEMBERS}add/",
             ONLINE, LIVEOPS, LIVEOPS_STATUS, "/admin/freeim_groups/", "/admin/"]

    async def reported_both_sockets():  # the live-ops page shows the node's own counts, reported every second
        return (await get_backend().nodes.node_health(["local"]))["local"]["connections"] == 2

    async def scenario():
        async with connected(application, users["alice"].pk), connected(application, users["alice"].pk):
            await eventually(reported_both_sockets, timeout=3)
            return {page: await sync_to_async(staff.get)(page) for page in pages}

    responses = run(scenario)
    assert {page: r.status_code for page, r in responses.items()} == dict.fromkeys(pages, 200)
    listing = responses[GROUPS].content.decode()
    assert "Online now" in listing and 'class="field-online_count">1<' in listing
    online = responses[ONLINE].content.decode()
    assert "1 client online" in online and "alice" in online and "local (2)" in online
    assert 'alt="True"' in responses[f"{GROUPS}{group.pk}/change/"].content.decode()  # alice, online
    assert f'href="{LIVEOPS}"' in listing and f'href="{LIVEOPS}"' in responses["/admin/freeim_groups/"].content.decode()
    assert re.search(r'<tr data-key="local" data-state="alive"><td>local</td><td>alive</td><td>yes</td><td>-</td>'
                     r'<td>\d+ ms</td><td>2</td><td>1</td><td></td></tr>', responses[LIVEOPS].content.decode())
    live = responses[LIVEOPS_STATUS].json()
    assert live["summary"] == "1 node(s), 1 client(s) online on 2 socket(s), 1 chan(s)" and live["error"] is None
    assert [(row["key"], row["state"], row["cells"][2]) for row in live["nodes"]] == [("local", "alive", "yes")]
    assert live["events"] == "events: sent by the node itself (embedded mode), no stream" and live["groups"] == []


def test_the_online_page_goes_a_page_at_a_time(users, staff, monkeypatch):
    monkeypatch.setattr(admin_pages, "ONLINE_PER_PAGE", 2)
    online(*users.values())
    first = staff.get(ONLINE).content.decode()
    assert "3 clients online" in first and "first page" not in first
    cursor = re.search(r'href="\?cursor=([^"]+)">next<', first).group(1)
    second = staff.get(f"{ONLINE}?cursor={cursor}").content.decode()
    assert 'href="?">first page<' in second and ">next<" not in second
    listed = [re.findall(r'name="client" value="([^"]+)"', page) for page in (first, second)]
    assert sorted(sum(listed, [])) == sorted(str(user.pk) for user in users.values()) and len(listed[1]) == 1


def test_pages_need_staff(users):
    client = Client()
    for page in (LIVEOPS, LIVEOPS_STATUS):  # logged out
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(users["alice"])
    for page in (GROUPS, ONLINE, MEMBERS, LIVEOPS, LIVEOPS_STATUS):
        assert client.get(page).status_code == 302  # to the admin login
    users["bob"].is_staff = True
    users["bob"].save()
    client.force_login(users["bob"])
    for page in (ONLINE, LIVEOPS, LIVEOPS_STATUS):
        response = client.get(page)
        assert response.status_code == 403 and b"alive" not in response.content  # staff, but no permission on groups
    view = Permission.objects.get(codename="view_group", content_type__app_label="freeim_groups")
    users["bob"].user_permissions.add(view)
    assert client.get(ONLINE).status_code == 200
    assert client.get(LIVEOPS).status_code == 200
    assert client.post(ONLINE, {"do": "broadcast", "text": "hi"}).status_code == 403  # viewing is not acting


def test_presence_is_read_once_per_page(staff, users, monkeypatch, django_assert_max_num_queries):
    group = make_group("big")
    Membership.objects.bulk_create(Membership(group=group, client_id=f"device-{n}") for n in range(1500))
    for n in range(30):
        make_group(f"g{n}", users["alice"])
    calls = []
    for name in ("has_online", "get_chan_list", "get_client_nodes"):
        real = getattr(im, name)
        monkeypatch.setattr(im, name, lambda *args, real=real, name=name: calls.append((name, args)) or real(*args))
    with django_assert_max_num_queries(12):
        assert staff.get(f"{GROUPS}{group.pk}/change/").status_code == 200
    with django_assert_max_num_queries(12):
        assert staff.get(MEMBERS).status_code == 200
    with django_assert_max_num_queries(12):
        assert staff.get(GROUPS).status_code == 200
    assert [(name, len(args[0]) if args else 0) for name, args in calls] == [
        ("has_online", 100), ("has_online", 100), ("get_chan_list", 0)]


def test_a_group_made_in_the_admin_reaches_its_members_without_joining(staff, users):
    """The demo's story: staff creates a group with two users; online or not yet, both get its messages."""
    alice, bob, carol = users["alice"], users["bob"], users["carol"]

    async def scenario():
        async with connected(application, alice.pk) as a, connected(application, carol.pk) as c:
            response = await post(staff, f"{GROUPS}add/", add_form("team", alice, bob))
            assert response.status_code == 302, [f.formset.errors for f in response.context["inline_admin_formsets"]]
            async with connected(application, bob.pk) as b:
                await im.asend_chan_message(carol.pk, "team", {"text": "hello both"})
                assert [(await chan_frame(t))["data"] for t in (a, b)] == [{"text": "hello both"}] * 2
                await silent(c)

    run(scenario)
    assert sorted(Membership.objects.values_list("user__username", "client_id")) == [
        ("alice", str(alice.pk)), ("bob", str(bob.pk))]


def test_deactivating_and_removing_in_the_change_form_take_effect_at_once(staff, users):
    alice, bob = users["alice"], users["bob"]
    group = make_group("team", alice, bob)
    alice_row, bob_row = Membership.objects.order_by("pk")
    change = f"{GROUPS}{group.pk}/change/"
    existing = {"memberships-TOTAL_FORMS": 2, "memberships-INITIAL_FORMS": 2,
                "memberships-0-id": alice_row.pk, "memberships-0-group": group.pk, "memberships-0-role": "member",
                "memberships-1-id": bob_row.pk, "memberships-1-group": group.pk, "memberships-1-role": "member"}

    async def scenario():
        async with connected(application, alice.pk), connected(application, bob.pk):
            response = await post(staff, change, add_form("team") | existing | {"memberships-1-DELETE": "on"})
            assert response.status_code == 302
            assert [await im.aget_chan_list_by_client_id(u.pk) for u in (alice, bob)] == [["team"], []]
            response = await post(staff, change, add_form("team", active=False) | existing
                                  | {"memberships-TOTAL_FORMS": 1, "memberships-INITIAL_FORMS": 1})
            assert response.status_code == 302
            assert await im.aget_chan_list_by_client_id(alice.pk) == []

    run(scenario)
    assert list(Membership.objects.values_list("user__username", flat=True)) == ["alice"]
    assert not Group.objects.get().is_active


def test_adding_an_existing_member_again_is_a_form_error(staff, users):
    group = make_group("team", users["alice"])
    row = Membership.objects.get()
    data = add_form("team", users["alice"]) | {
        "memberships-TOTAL_FORMS": 1, "memberships-INITIAL_FORMS": 1, "memberships-0-id": row.pk,
        "memberships-0-group": group.pk, "memberships-0-role": "member"}
    response = staff.post(f"{GROUPS}{group.pk}/change/", data)
    assert response.status_code == 200 and "already exists" in response.content.decode()


AUTOCOMPLETE = "/admin/autocomplete/"


def picker(page, field):
    """The tag of the form field named ``field`` (e.g. ``memberships-2-0-user``) on ``page``."""
    return re.search(rf'<(?:select|input)[^>]*name="{re.escape(field)}"[^>]*>', page)[0]


def searches(tag):
    return tag.startswith("<select") and 'class="admin-autocomplete"' in tag


def test_members_are_picked_by_searching_usernames(staff, users):
    """Not by typing a user's numeric id: the pickers search the user admin's search fields (the username)."""
    pages = {f"{GROUPS}add/": "memberships-2-0-user", f"{MEMBERS}add/": "user"}
    for page, field in pages.items():
        assert searches(picker(staff.get(page).content.decode(), field)), page
    assert searches(picker(staff.get(f"{MEMBERS}add/").content.decode(), "group"))
    found = staff.get(AUTOCOMPLETE, {"app_label": "freeim_groups", "model_name": "membership",
                                     "field_name": "user", "term": "ali"})
    assert found.status_code == 200 and found.json()["results"] == [{"id": str(users["alice"].pk), "text": "alice"}]


@pytest.fixture(params=["unregistered", "without search fields"])
def user_admin_that_cannot_search(request):
    """A project whose user model's admin cannot search (a custom user model's, say): unregistered, or plain."""
    registered = admin.site.get_model_admin(User)
    admin.site.unregister(User)
    if request.param == "without search fields":
        admin.site.register(User, admin.ModelAdmin)
    yield
    if admin.site.is_registered(User):
        admin.site.unregister(User)
    admin.site.register(User, type(registered))


def test_without_a_searchable_user_admin_members_are_picked_by_id(staff, users, user_admin_that_cannot_search):
    for page, field in {f"{GROUPS}add/": "memberships-2-0-user", f"{MEMBERS}add/": "user"}.items():
        response = staff.get(page)
        tag = picker(response.content.decode(), field)
        assert response.status_code == 200 and tag.startswith('<input type="text"') and not searches(tag)
    response = staff.post(f"{GROUPS}add/", add_form("team", users["alice"]))
    assert response.status_code == 302 and Membership.objects.get().user == users["alice"]


def test_announcement_action_reaches_the_active_groups(staff, users):
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    team, closed, other = make_group("team", alice), make_group("closed", bob, is_active=False), make_group("x", carol)
    selected = {"action": "announce", "_selected_action": [team.pk, closed.pk]}

    async def scenario():
        async with connected(application, alice.pk) as a, connected(application, bob.pk) as b, \
                connected(application, carol.pk) as c:
            form = await post(staff, GROUPS, selected)
            assert form.status_code == 200 and "Send an announcement" in form.content.decode()
            empty = await post(staff, GROUPS, selected | {"send": "Send", "text": ""})
            assert empty.status_code == 200  # the form again, with its error
            sent = await post(staff, GROUPS, selected | {"send": "Send", "text": "Maintenance at 22:00"})
            assert sent.status_code == 302
            assert await chan_frame(a) == {"type": "chan", "id": ANY, "chan": "team", "from": staff.user.pk,
                                           "data": {"text": "Maintenance at 22:00", "announcement": True}}
            await silent(b, c)

    run(scenario)
    assert other.pk not in selected["_selected_action"]
    told = [str(message) for message in staff.get(GROUPS).context["messages"]]
    assert told == ["Announcement sent to 1 active group."]  # it said "1 active groups"


def test_force_offline_action_closes_the_selected_members_sockets(staff, users):
    alice, bob = users["alice"], users["bob"]
    make_group("team", alice, bob)
    alice_row = Membership.objects.get(user=alice)

    async def scenario():
        phone = await FreeIMCommunicator.open(application, alice.pk)
        laptop = await FreeIMCommunicator.open(application, alice.pk)
        async with connected(application, bob.pk) as b:
            response = await post(staff, MEMBERS, {"action": "force_offline", "_selected_action": [alice_row.pk]})
            assert response.status_code == 302
            assert [await phone.receive_close(), await laptop.receive_close()] == [4000, 4000]
            await b.send_to(text_data='{"type": "ping"}')
            assert await b.receive_frame() == {"type": "pong"}
        for socket in (phone, laptop):
            await socket.disconnect()

    run(scenario)


def test_online_page_broadcasts_and_forces_clients_offline(staff, users):
    alice = users["alice"]

    async def scenario():
        target = await FreeIMCommunicator.open(application, "sensor-1")
        async with connected(application, alice.pk) as a:
            response = await post(staff, f"{ONLINE}?page=1", {"do": "broadcast", "text": "hello everyone"})
            assert response.status_code == 302 and response["Location"] == f"{ONLINE}?page=1"
            frame = {"type": "broadcast", "data": {"text": "hello everyone", "announcement": True}}
            assert [await a.receive_frame(), await target.receive_frame()] == [frame, frame]
            response = await post(staff, ONLINE, {"do": "force_offline", "client": ["sensor-1"]})
            assert response.status_code == 302
            assert await target.receive_close() == 4000
            await silent(a)
        await target.disconnect()
        await post(staff, ONLINE, {"do": "force_offline", "client": ["x" * 200]})
        await post(staff, ONLINE, {"do": "broadcast", "text": ""})
        return (await sync_to_async(staff.get)(ONLINE)).content.decode()

    page = run(scenario)
    assert "Not done: Client ids are" in page and "A broadcast needs a text" in page
