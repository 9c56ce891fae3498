"""freeim.backends: the backend is built from FREEIM['BACKEND'] and its options; blocking runs never suspend."""

import asyncio

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from freeim import im
from freeim.backends import get_backend, run_blocking
from freeim.backends.memory import MemoryBackend, MemoryState
from freeim.backends.redis import RedisBackend


class LabelledBackend(MemoryBackend):
    """A project's own backend, with an option."""

    def __init__(self, label):
        super().__init__()
        self.label = label


def test_the_backend_is_the_dotted_path_built_with_its_options():
    with override_settings(FREEIM={"BACKEND": "tests.backends.test_backends.LabelledBackend",
                                   "BACKEND_OPTIONS": {"label": "mine"}}):
        backend = get_backend()
        assert isinstance(backend, LabelledBackend) and backend.label == "mine"
        assert get_backend() is backend  # one per process
        assert im.get_client_list_by_online() == []  # the helpers run on it


def test_redis_url_alone_chooses_the_redis_backend(redis_server):
    with override_settings(FREEIM={"REDIS_URL": redis_server.url, "REDIS_PREFIX": "chosen"}):
        backend = get_backend()
        assert isinstance(backend, RedisBackend) and backend.keys.prefix == "chosen"


def test_a_dotted_path_to_something_else_is_refused():
    with override_settings(FREEIM={"BACKEND": "freeim.backends.memory.MemoryState"}), \
            pytest.raises(ImproperlyConfigured):
        get_backend()


def test_run_blocking_finishes_a_coroutine_that_never_suspends():
    state = MemoryState()
    assert run_blocking(state.add_connection("a", 1, "a1")) is True
    assert run_blocking(state.locate([1])) == {1: {"a": 1}}


def test_run_blocking_refuses_a_coroutine_that_suspends():
    async def suspends():
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspends"):
        run_blocking(suspends())
