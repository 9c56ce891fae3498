"""Persistent groups: a group's slug is its chan name; its members are client ids.

Presence stays out of SQL: who is online comes from :mod:`freeim.im`. What an
online client must do when a membership or a group changes (join, leave) is in
:mod:`freeim.groups.live`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Self

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.module_loading import import_string

from freeim import ids
from freeim.auth import client_id_of, user_client_id
from freeim.conf import conf
from freeim.exceptions import FreeIMError, InvalidChan, InvalidClientId

chan_name = RegexValidator(ids.CHAN_PATTERN, InvalidChan.default_message, code="invalid_chan")


def member_key(client_id: object) -> str:
    """The canonical text form of a client id, as stored in :attr:`Membership.client_id` (``42`` -> ``"42"``)."""
    return str(ids.client_id(client_id))


def users_of_clients(client_ids: Iterable[object]) -> dict[ids.ClientId, Any]:
    """The users whose client ids are among ``client_ids``: ``{client id: user}``.

    With the default ``CLIENT_ID_RESOLVER`` a user's client id is its pk, so any user
    is found; with another resolver only the users linked to a membership are.
    """
    wanted = ids.client_ids(client_ids)
    if import_string(conf.CLIENT_ID_RESOLVER) is user_client_id:
        users = get_user_model()._default_manager.filter(pk__in=[c for c in wanted if isinstance(c, int)])
        return {user.pk: user for user in users}
    links = Membership.objects.filter(client_id__in=[str(c) for c in wanted], user__isnull=False)
    return {ids.client_id(m.client_id): m.user for m in links.select_related("user")}


class Tracked(models.Model):
    """Remembers the values of ``tracked`` fields as loaded, so a save can tell what changed."""

    tracked: tuple[str, ...] = ()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any) -> Self:
        instance = super().from_db(db, field_names, values, **kwargs)
        instance.loaded = instance.tracked_values()
        return instance

    def tracked_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.tracked}

    def save(self, *args: Any, **kwargs: Any) -> None:
        # For the post_save receivers: what the row held before (None: unknown, e.g. just created).
        self.previously = getattr(self, "loaded", None)
        super().save(*args, **kwargs)
        self.loaded = self.tracked_values()


class Group(Tracked):
    """A chat group whose active members join its chan (``slug``) whenever they are online."""

    tracked = ("slug", "is_active")

    slug = models.CharField(max_length=100, unique=True, validators=[chan_name],
                            help_text="The chan name: 1-100 letters, digits and . _ - : @")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField("active", default=True, db_index=True,
                                    help_text="Inactive groups keep their members but have no chan.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "chat group"

    def __str__(self) -> str:
        return self.title or self.slug


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


#: Who outranks whom: an owner may manage anyone, an admin plain members only.
RANK: dict[str, int] = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


class Membership(Tracked):
    """A client id in a group, linked to its user when the client id is a user's."""

    tracked = ("group_id", "client_id")

    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")
    client_id = models.CharField(max_length=ids.MAX_CLIENT_ID_LENGTH, blank=True,
                                 help_text="Left empty, the user's client id.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="freeim_memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group", "joined_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["group", "client_id"], name="freeim_groups_one_membership"),
            models.CheckConstraint(condition=~models.Q(client_id=""), name="freeim_groups_member_has_client_id"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="freeim_groups_known_role"),
        ]
        # Auto-join on connect reads a client's groups: by client id, covering the join to the group.
        indexes = [models.Index(fields=["client_id", "group"], name="freeim_groups_client_idx")]

    def __str__(self) -> str:
        return f"{self.client_id} in {self.group_id}"

    @property
    def client(self) -> ids.ClientId:
        """The client id in its canonical form (an int for a decimal string)."""
        return ids.client_id(self.client_id)

    def clean(self) -> None:
        """Fill the client id from the user, or the user from the client id; refuse a bad or mismatched one."""
        try:
            self.link()
        except FreeIMError as error:
            raise ValidationError({"client_id": error.message}) from error

    def link(self) -> None:
        """Put the client id in its canonical form and link it to its user (both ways)."""
        if self.user_id is not None:
            mine = member_key(client_id_of(self.user))
            if self.client_id and member_key(self.client_id) != mine:
                raise InvalidClientId(f"{self.user}'s client id is {mine}, not {self.client_id}.")
            self.client_id = mine
        elif self.client_id:
            self.client_id = member_key(self.client_id)
            self.user = users_of_clients([self.client_id]).get(self.client)
        else:
            raise InvalidClientId("Give a user or a client id.")

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.link()
        super().save(*args, **kwargs)


def active_group_chans(client_id: ids.ClientId) -> list[str]:
    """The auto-join provider: the chans of the client's active groups (one indexed query)."""
    groups = Group.objects.filter(is_active=True, memberships__client_id=member_key(client_id))
    return list(groups.values_list("slug", flat=True))


#: Slugs per ``slug__in`` query: under SQLite's oldest bound-parameter limit (999).
SLUGS_PER_QUERY = 900


def group_chans_among(chans: list[str]) -> set[str]:
    """The batched managed-chan test: which of ``chans`` are groups' chans, active or not.

    A group's chan is joined through membership only, so no one joins it by guessing its name.
    One query per :data:`SLUGS_PER_QUERY` chans.
    """
    found: set[str] = set()
    for start in range(0, len(chans), SLUGS_PER_QUERY):
        batch = chans[start:start + SLUGS_PER_QUERY]
        found.update(Group.objects.filter(slug__in=batch).values_list("slug", flat=True))
    return found
