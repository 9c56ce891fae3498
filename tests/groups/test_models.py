"""freeim.groups models: canonical client ids, user links, constraints, cascades, the provider."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from freeim.exceptions import InvalidClientId
from freeim.groups.models import Group, Membership, active_group_chans, users_of_clients
from tests.groups.helpers import add, make_group

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    return {name: User.objects.create(username=name) for name in ("alice", "bob")}


def test_members_are_canonical_client_ids_linked_to_their_users(users):
    alice, bob = users["alice"], users["bob"]
    group = make_group("team")
    by_user = add(group, alice)
    by_id = add(group, str(bob.pk))
    device = add(group, "sensor-7")
    zero_padded = add(group, "007")
    assert (by_user.client_id, by_user.client, by_user.user) == (str(alice.pk), alice.pk, alice)
    assert (by_id.client_id, by_id.client, by_id.user) == (str(bob.pk), bob.pk, bob)
    assert (device.client, device.user) == ("sensor-7", None)
    assert (zero_padded.client, zero_padded.user) == ("007", None)  # not a decimal id: a string client


def test_users_of_clients_follows_the_resolver(users, settings):
    alice = users["alice"]
    assert users_of_clients([alice.pk, "sensor", 999]) == {alice.pk: alice}
    settings.FREEIM = {"CLIENT_ID_RESOLVER": "tests.groups.test_models.username_client_id"}
    add(make_group("team"), alice)
    assert Membership.objects.get().client_id == "alice"
    assert users_of_clients(["alice", "bob"]) == {"alice": alice}  # only users linked to a membership


def username_client_id(user):
    return user.username


def test_a_client_is_a_member_once_per_group(users):
    group = make_group("team", users["alice"])
    with pytest.raises(ValidationError, match="already exists"):
        Membership(group=group, client_id=users["alice"].pk).full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        add(group, users["alice"].pk)
    add(make_group("other"), users["alice"])  # another group is fine


def test_bad_members_and_slugs_are_refused(users):
    group = make_group("team")
    for bad in [Membership(group=group), Membership(group=group, client_id="x" * 129),
                Membership(group=group, user=users["alice"], client_id=users["bob"].pk)]:
        with pytest.raises(ValidationError) as refused:
            bad.full_clean()
        assert "client_id" in refused.value.message_dict
    with pytest.raises(InvalidClientId):
        Membership.objects.create(group=group)
    with pytest.raises(ValidationError) as refused:
        Group(slug="no spaces", title="x").full_clean()
    assert "slug" in refused.value.message_dict


def test_deleting_a_user_or_a_group_deletes_their_memberships(users):
    team, other = make_group("team", users["alice"], users["bob"]), make_group("other", users["alice"])
    users["alice"].delete()
    assert list(Membership.objects.values_list("group__slug", "user__username")) == [("team", "bob")]
    team.delete()
    assert not Membership.objects.exists() and list(Group.objects.all()) == [other]


def test_the_auto_join_provider_gives_active_groups_in_one_query(users, django_assert_num_queries):
    alice = users["alice"]
    make_group("b-team", alice)
    make_group("a-team", alice)
    make_group("closed", alice, is_active=False)
    make_group("others", users["bob"])
    with django_assert_num_queries(1):
        assert sorted(active_group_chans(alice.pk)) == ["a-team", "b-team"]
    assert active_group_chans("nobody") == []
