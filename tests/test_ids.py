import pytest

from freeim import ids
from freeim.exceptions import InvalidChan, InvalidClientId


@pytest.mark.parametrize(("raw", "canonical"), [(5, 5), ("5", 5), ("-3", -3), ("0", 0), ("007", "007"),
                                               ("alice", "alice"), ("user:9", "user:9")])
def test_client_id_canonical_form(raw, canonical):
    assert ids.client_id(raw) == canonical


@pytest.mark.parametrize("raw", [True, None, "", "x" * 129, "tab\there", 1.5, [1], {"a": 1}, "42\n"])
def test_client_id_rejects(raw):
    with pytest.raises(InvalidClientId):
        ids.client_id(raw)


@pytest.mark.parametrize("raw", [10**128 - 1, -(10**127 - 1), "x" * 128])
def test_client_ids_may_have_max_client_id_length_characters(raw):
    assert ids.client_id(raw) == raw


def test_an_int_and_its_digits_are_one_client_whatever_their_length():
    """Both are written to Redis as their digits: two clients there would share one key."""
    assert ids.client_id("7" * 128) == int("7" * 128)
    assert ids.client_id(str(10**20)) == 10**20 and ids.client_id(str(-(10**20))) == -(10**20)


# 10**5000 has more digits than Python turns into a string (4,300): it must be refused, not crash.
@pytest.mark.parametrize("raw", [10**128, -(10**127), 10**4299, 10**5000, -(10**5000), "x" * 129, "7" * 129],
                         ids=["129 digits", "-128 digits", "4300 digits", "5001 digits", "-5001 digits", "129 letters",
                              "129 digit characters"])
def test_client_ids_longer_than_max_client_id_length_are_refused_clearly(raw):
    with pytest.raises(InvalidClientId) as error:
        ids.client_id(raw)
    assert "at most 128 characters long (an int's sign counts)" in str(error.value)


def test_max_client_id_length_is_a_setting(settings):
    settings.FREEIM = {"MAX_CLIENT_ID_LENGTH": 8}
    assert ids.client_id(99_999_999) == 99_999_999 and ids.client_id(-9_999_999) == -9_999_999
    assert ids.client_id("x" * 8) == "x" * 8
    for raw in (100_000_000, -10_000_000, "x" * 9):
        with pytest.raises(InvalidClientId, match="at most 8 characters long"):
            ids.client_id(raw)
    assert ids.MAX_CLIENT_ID_LENGTH == 128  # the column size of freeim.groups, whatever the setting


def test_client_ids_accepts_one_or_many_and_dedupes():
    assert ids.client_ids(7) == [7]
    assert ids.client_ids(["7", 7, "bob", 8]) == [7, "bob", 8]


@pytest.mark.parametrize("name", ["room", "a.b_c-d:e@f", "x" * 100])
def test_chan_accepts(name):
    assert ids.chan(name) == name


@pytest.mark.parametrize("name", ["", "has space", "x" * 101, "slash/", 5, None, "ünïcode", "team\n"])
def test_chan_rejects(name):
    with pytest.raises(InvalidChan):
        ids.chan(name)
