import pytest

from freeim.exceptions import NoServerAvailable
from freeim.messaging import router

NODES = ["n1:6001", "n2:6002", "n3:6003", "n4:6004"]


def test_modulo_is_freeim_compatible_for_int_ids():
    assert [router.modulo(i, NODES) for i in range(6)] == NODES + NODES[:2]


def test_modulo_hashes_string_ids_stably():
    assert router.modulo("alice", NODES) == router.modulo("alice", list(NODES))
    assert len({router.modulo(f"user-{i}", NODES) for i in range(100)}) == 4


def test_rendezvous_is_deterministic_and_spreads_evenly():
    counts = {node: 0 for node in NODES}
    for i in range(20_000):
        counts[router.rendezvous(i, NODES)] += 1
    assert router.rendezvous(42, NODES) == router.rendezvous(42, list(reversed(NODES)))
    assert all(4_000 < c < 6_000 for c in counts.values()), counts


@pytest.mark.parametrize("change", ["add", "remove"])
def test_rendezvous_moves_about_one_nth_on_100k_ids(change):
    before, after = (NODES[:3], NODES) if change == "add" else (NODES, NODES[:3])
    moved = sum(router.rendezvous(i, before) != router.rendezvous(i, after) for i in range(100_000))
    # One of 4 nodes came or went: ideally 25% of clients move, and only to or from that node.
    assert 0.23 < moved / 100_000 < 0.27


def test_modulo_moves_most_clients_when_a_node_is_added():
    moved = sum(router.modulo(i, NODES[:3]) != router.modulo(i, NODES) for i in range(100_000))
    assert moved / 100_000 > 0.7


def test_pick_and_empty_node_list():
    assert router.pick(3, NODES, "modulo") == NODES[3]
    with pytest.raises(NoServerAvailable):
        router.pick(3, [], "rendezvous")
