import pytest

from freeim import ids
from freeim.exceptions import InvalidChan, InvalidClientId


@pytest.mark.parametrize(("raw", "canonical"), [(5, 5), ("5", 5), ("-3", -3), ("0", 0), ("007", "007"),
                                               ("alice", "alice"), ("user:9", "user:9")])
def test_client_id_canonical_form(raw, canonical):
    assert ids.client_id(raw) == canonical


@pytest.mark.parametrize("raw", [True, None, "", "x" * 129, "tab\there", 1.5, [1], {"a": 1}])
def test_client_id_rejects(raw):
    with pytest.raises(InvalidClientId):
        ids.client_id(raw)


def test_client_ids_accepts_one_or_many_and_dedupes():
    assert ids.client_ids(7) == [7]
    assert ids.client_ids(["7", 7, "bob", 8]) == [7, "bob", 8]


@pytest.mark.parametrize("name", ["room", "a.b_c-d:e@f", "x" * 100])
def test_chan_accepts(name):
    assert ids.chan(name) == name


@pytest.mark.parametrize("name", ["", "has space", "x" * 101, "slash/", 5, None, "ünïcode"])
def test_chan_rejects(name):
    with pytest.raises(InvalidChan):
        ids.chan(name)
