"""The node's garbage-collector keeper, with the real collector."""

import gc
import weakref

import pytest

from freeim.node import heap


@pytest.fixture(autouse=True)
def unfrozen():
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self):
        self.me = self


def test_nothing_changed_nothing_collected():
    assert heap.HeapKeeper().tend(live=10) is None


def test_a_change_collects_recent_garbage_and_freezes_the_rest():
    keeper = heap.HeapKeeper()
    kept, garbage = Cycle(), weakref.ref(Cycle())  # the second one is garbage in a reference cycle
    keeper.attached()
    assert keeper.tend(live=1) == "recent"
    assert garbage() is None
    assert not any(obj is kept for obj in gc.get_objects())  # frozen: out of the collector's generations
    assert keeper.tend(live=1) is None  # nothing changed since


def test_a_full_collection_after_the_population_turned_over(monkeypatch):
    monkeypatch.setattr(heap, "FULL_AFTER", 3)
    keeper = heap.HeapKeeper()
    for _ in range(2):
        keeper.detached()
    assert keeper.tend(live=2) == "recent"
    frozen_garbage = weakref.ref(Cycle())
    gc.freeze()  # now garbage, but frozen, in a cycle: only a full collection frees it
    keeper.detached()
    assert keeper.tend(live=2) == "full"
    assert frozen_garbage() is None
    assert keeper.closed_since_full == 0
