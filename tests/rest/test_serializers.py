"""connect/'s plain bodies are validated without the serializer, to exactly what the serializer makes of them."""

from hypothesis import given, settings
from hypothesis import strategies as st

from freeim.rest.serializers import ConnectSerializer, plainly_valid_connect

#: Strings around the edges the serializer cares about: blank, whitespace to trim, NUL, surrogates, lengths.
TEXT = st.one_of(st.sampled_from(["", " ", "a", " a", "a ", "\x00", "a\x00", "é", "\ud800", "*", "9e718890.17",
                                  *("x" * n for n in (40, 41, 100, 101, 300, 301, 1024, 1025))]),
                 st.text(max_size=8))
VALUE = st.one_of(TEXT, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                  st.lists(TEXT, max_size=3), st.dictionaries(TEXT, TEXT, max_size=3))
#: As many chans as a client may be in (MAX_CHANS_PER_CLIENT, 100), or one more.
CHANS = st.sampled_from([[f"c{n}" for n in range(100)], [f"c{n}" for n in range(101)]])
BODY = st.one_of(
    st.fixed_dictionaries({}, optional={"meta": TEXT, "since": TEXT, "avoid": TEXT, "client_id": VALUE,
                                        "join": st.one_of(st.lists(TEXT, max_size=3), CHANS),
                                        "chans_since": st.one_of(st.dictionaries(TEXT, TEXT, max_size=3),
                                                                 CHANS.map(lambda chans: dict.fromkeys(chans, "*")))}),
    st.dictionaries(st.sampled_from(("meta", "since", "chans_since", "join", "avoid")), VALUE),
    VALUE)


@settings(max_examples=2000, deadline=None)
@given(BODY)
def test_a_body_taken_without_the_serializer_is_what_the_serializer_makes_of_it(body):
    plain = plainly_valid_connect(body)
    if plain is not None:
        serializer = ConnectSerializer(data=body)
        assert serializer.is_valid(), serializer.errors
        assert plain == serializer.validated_data


def test_the_bodies_terminals_send_are_taken_without_the_serializer():
    assert plainly_valid_connect({}) == {"meta": "", "since": None, "chans_since": None, "join": [], "avoid": None}
    body = {"meta": "web", "since": "9e718890.17", "chans_since": {"room": "*"}, "join": ["room"], "avoid": "n1:1"}
    assert plainly_valid_connect(body) == body
