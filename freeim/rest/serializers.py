"""Request bodies of the REST API; ids and chan names validated by :mod:`freeim.ids`."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .. import ids
from ..conf import conf
from ..exceptions import FreeIMError
from ..messaging.operations import MAX_META_LENGTH, MAX_PAGE, MAX_READ_AT_ONCE, PAGE

MAX_RECEIVERS = 1000


class ClientIdField(serializers.Field[ids.ClientId, Any, Any, Any]):
    """An int or string client id, in its canonical form."""

    def to_internal_value(self, data: Any) -> ids.ClientId:
        try:
            return ids.client_id(data)
        except FreeIMError as error:  # its message names this deployment's MAX_CLIENT_ID_LENGTH
            raise serializers.ValidationError(error.message, code="invalid") from None

    def to_representation(self, value: Any) -> Any:
        return value


class ChansCountedFirst(serializers.Field[Any, Any, Any, Any]):
    """At most ``MAX_CHANS_PER_CLIENT`` entries, counted before each is checked, so a body of 100,000 entries
    costs one look, not 100,000 validations."""

    default_error_messages = {"too_many": "At most {limit} chans."}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict | list) and len(data) > conf.MAX_CHANS_PER_CLIENT:
            self.fail("too_many", limit=conf.MAX_CHANS_PER_CLIENT)
        return super().to_internal_value(data)


class ChanPositionsField(ChansCountedFirst, serializers.DictField):
    """Chan -> position."""

    child = serializers.CharField(max_length=40)


class ChanListField(ChansCountedFirst, serializers.ListField):
    """Chan names."""

    child = serializers.CharField(max_length=100)


class ConnectSerializer(serializers.Serializer[Any]):
    meta = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_META_LENGTH)
    #: The last position the terminal holds ("*": none yet); absent: live messages only.
    since = serializers.CharField(required=False, default=None, max_length=40)
    #: The position it resumes each of these chans from.
    chans_since = ChanPositionsField(required=False, default=None)
    #: Chans to join as the socket opens (the terminal's own; the server's managed ones are left out).
    join = ChanListField(required=False, default=list)
    #: The node the terminal just lost or could not reach (its answer's ``server``): another if there is one.
    avoid = serializers.CharField(required=False, default=None, max_length=300)


def plainly_valid_connect(data: Any) -> dict[str, Any] | None:
    """What :class:`ConnectSerializer` validates ``data`` to, when ``data`` plainly passes: strings
    ASCII, within their field's length, not blank where it may not be, without whitespace to trim.
    None otherwise: the serializer then judges (and words any error). The serializer costs about
    100 µs of CPU a request, most of it copying its fields; this check, a few µs."""
    if not isinstance(data, dict):
        return None
    fields = ConnectSerializer._declared_fields  # the limits, as declared (an instance would copy them)
    meta = data.get("meta", "")
    chans_since, join = data.get("chans_since"), data.get("join", [])
    plain = (_plain(meta, fields["meta"]) and all(_plain(data[name], fields[name])
                                                 for name in ("since", "avoid") if name in data)
             and ("chans_since" not in data
                  or type(chans_since) is dict and _all_plain(list(chans_since.values()), fields["chans_since"]))
             and type(join) is list and _all_plain(join, fields["join"]))
    return {"meta": meta, "since": data.get("since"), "chans_since": chans_since, "join": join,
            "avoid": data.get("avoid")} if plain else None


def _plain(value: Any, field: Any) -> bool:
    """``value`` is what ``field`` (a CharField) takes as it is."""
    return (type(value) is str and value.isascii() and len(value) <= field.max_length
            and (field.allow_blank or value != "") and value == value.strip() and "\x00" not in value)


def _all_plain(values: list[Any], field: Any) -> bool:
    """Whether ``field`` (a dict or list of chans) takes these ``values`` of it as they are: few enough, each plain."""
    return len(values) <= conf.MAX_CHANS_PER_CLIENT and all(_plain(value, field.child) for value in values)


def key_field() -> serializers.CharField:
    """The sender's idempotency key: a POST retried with it sends nothing new and answers with the same id."""
    return serializers.CharField(required=False, default=None, min_length=1, max_length=ids.MAX_KEY_LENGTH,
                                 trim_whitespace=False)  # " k" is not "k": a key is compared as given


class MessageSerializer(serializers.Serializer[Any]):
    to = serializers.ListField(child=ClientIdField(), min_length=1, max_length=MAX_RECEIVERS)
    # Any JSON, null too. The ignore: DRF's metaclass takes declared fields off the class, so this field does not
    # shadow the ``Serializer.data`` property, as the stubs think.
    data = serializers.JSONField(allow_null=True)  # type: ignore[assignment]
    receipt = serializers.BooleanField(required=False, default=False)
    key = key_field()


class PageQuery(serializers.Serializer[Any]):
    """Which page of a long list (the online clients, the chans): a query string."""

    cursor = serializers.CharField(required=False, default="", allow_blank=True, max_length=64, help_text=(
        "The `next` of the page before; none for the first page."))
    count = serializers.IntegerField(required=False, default=PAGE, min_value=1, max_value=MAX_PAGE, help_text=(
        "About how many items the page holds."))


class ReadSerializer(serializers.Serializer[Any]):
    ids = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1, max_length=MAX_READ_AT_ONCE)


class DataSerializer(serializers.Serializer[Any]):
    data = serializers.JSONField(allow_null=True)  # type: ignore[assignment]  # a field, as in MessageSerializer


class ChanMessageSerializer(DataSerializer):
    key = key_field()
