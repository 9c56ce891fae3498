"""The Redis key layout: no id can spell another key's name, and each owner's keys share a slot with its
partition's."""

from hypothesis import given
from hypothesis import strategies as st

from freeim import ids
from freeim.backends.redis.keys import PARTITIONS, SLOTS, Keys, partition, partition_tag, slot
from freeim.exceptions import InvalidClientId

KINDS = {"node": ("alive", "health", "conns", "metas", "inbox", "inbox-sz", "inbox-ix"),
         "client": ("conns", "chans", "left", "ver", "inbox", "inbox-meta", "inbox-ids"),
         "chan": ("members", "nodes", "ended", "stream", "stream-meta", "stream-ids")}
SHARED = ("nodes", "reaper", "draining")
#: Keys of a partition: of its clients, of its chans.
PARTS = {"clients": ("online", "events", "dirty"), "chans": ("",)}
#: Keys of an events consumer group: its workers, their wake-up list (``{g}``); its lease of a partition.
GROUPS = {"workers": ("alive", "wake"), "lease": ("",)}
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
parts = st.sampled_from(sorted(PARTS)).flatmap(
    lambda kind: st.tuples(st.just(kind), st.integers(0, PARTITIONS - 1), st.sampled_from(PARTS[kind])))
groups = st.sampled_from(sorted(GROUPS)).flatmap(  # owner: the group, and the partition of a lease
    lambda kind: st.tuples(st.just(kind), st.tuples(texts, st.integers(0, PARTITIONS - 1) if kind == "lease"
                                                    else st.just(0)), st.sampled_from(GROUPS[kind])))
any_key = owned | parts | groups | st.tuples(st.just("shared"), st.just(""), st.sampled_from(SHARED)) | st.tuples(
    st.just("token"), texts, st.just(""))


def name(kind: str, owner: object, what: str) -> str:
    if kind == "shared":
        return keys.shared(what)
    if kind == "token":
        return keys.token(str(owner))
    if kind == "clients":
        return keys.clients(owner, what)
    if kind == "chans":
        return keys.chans(owner)
    if kind == "workers":
        return keys.workers(owner[0], what)
    if kind == "lease":
        return keys.lease(owner[1], owner[0])
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
def test_every_key_of_one_owner_has_the_hash_tag_of_its_partition(first, second):
    kind, owner, _ = first
    tags = {hash_tag(name(kind, owner, what)) for what in KINDS[kind]}
    assert len(tags) == 1
    if kind == "client":
        assert tags == {hash_tag(keys.clients_of(owner, "online")), hash_tag(keys.clients_of(owner, "events"))}
    elif kind == "chan":
        assert tags == {hash_tag(keys.chans_of(owner))}
    same_tag = hash_tag(name(*first)) == hash_tag(name(*second))
    if kind == "node" or second[0] == "node":  # a node's tag is its own
        assert same_tag == (first[:2] == second[:2])
    else:  # clients, and chans, share their partition's
        assert same_tag == (kind == second[0] and partition(owner) == partition(second[1]))


def test_partitions_fill_equal_ranges_of_slots():
    """Each partition's tag falls in its own range of Redis Cluster's slots: 3 shards of equal slot ranges hold
    a third of the partitions each."""
    width = SLOTS // PARTITIONS
    for kind in "ch":
        assert [slot(partition_tag(kind, part)) // width for part in range(PARTITIONS)] == list(range(PARTITIONS))


def test_slots_are_redis_clusters():
    """Redis Cluster's documented slots (CLUSTER KEYSLOT): CRC16/XMODEM of the tag."""
    assert (slot("foo"), slot("somekey")) == (12182, 11058)


def test_keys_read_plainly():
    assert keys.client(42, "conns") == "freeim:{c8.157}:42:conns"
    assert keys.clients_of(42, "online") == "freeim:{c8.157}:online"
    assert keys.chan("room:nodes", "members") == "freeim:{h33.72}:room%3Anodes:members"
    assert keys.chans_of("room:nodes") == "freeim:{h33.72}:chans"
    assert keys.node("127.0.0.1:6001", "inbox") == "freeim:{n:127.0.0.1%3A6001}:inbox"
    assert keys.shared("nodes") == "freeim:{g}:nodes"
