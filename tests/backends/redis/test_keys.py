"""The Redis key layout: no id can spell another key's name, and each owner's keys share a slot."""

from hypothesis import given
from hypothesis import strategies as st

from freeim import ids
from freeim.backends.redis.keys import Keys
from freeim.exceptions import InvalidClientId

KINDS = {"node": ("alive", "health", "conns", "metas", "inbox", "inbox-sz", "inbox-ix"), "client": ("conns", "chans"),
         "chan": ("members", "nodes")}
SHARED = ("nodes", "online", "chans", "events", "reaper", "draining")
keys = Keys("freeim")
#: What ids hold: ':' and braces and '%' (which the encoding uses), spaces, unicode.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40) | st.sampled_from(
    ["room", "room:nodes", "room:members", "{g}", "a}b{c", "%3A", ":", "n:x", "h:room", "tok", "42", str(10**20)])


def canonical(value: object) -> object:
    """Keys are built from canonical client ids only (``"42"`` is the client ``42``)."""
    try:
        return ids.client_id(value)
    except InvalidClientId:
        return None


client_ids = (texts | st.integers() | st.just(10**20)).map(canonical).filter(lambda value: value is not None)
owned = st.sampled_from(sorted(KINDS)).flatmap(
    lambda kind: st.tuples(st.just(kind), client_ids if kind == "client" else texts, st.sampled_from(KINDS[kind])))
any_key = owned | st.tuples(st.just("shared"), st.just(""), st.sampled_from(SHARED)) | st.tuples(
    st.just("token"), texts, st.just(""))


def name(kind: str, owner: object, what: str) -> str:
    if kind == "shared":
        return keys.shared(what)
    if kind == "token":
        return keys.token(str(owner))
    return getattr(keys, kind)(owner, what)


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text between the first '{' and the next '}'."""
    start = key.index("{")
    return key[start + 1:key.index("}", start)]


@given(any_key, any_key)
def test_distinct_owners_and_kinds_never_share_a_key(first, second):
    if first != second:
        assert name(*first) != name(*second)


@given(owned, owned)
def test_every_key_of_one_owner_has_its_hash_tag_and_no_other_owner_has_it(first, second):
    kind, owner, _ = first
    tags = {hash_tag(name(kind, owner, what)) for what in KINDS[kind]}
    assert len(tags) == 1
    assert (hash_tag(name(*first)) == hash_tag(name(*second))) == (first[:2] == second[:2])


def test_keys_read_plainly():
    assert keys.client(42, "conns") == "freeim:{c:42}:conns"
    assert keys.chan("room:nodes", "members") == "freeim:{h:room%3Anodes}:members"
    assert keys.node("127.0.0.1:6001", "inbox") == "freeim:{n:127.0.0.1%3A6001}:inbox"
    assert keys.shared("online") == "freeim:{g}:online"
