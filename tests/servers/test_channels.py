"""freeim.servers.channels: freeim's consumer loop on channels 4, and channels' own loop on any other version."""

import inspect

import pytest
from asgiref.compatibility import is_double_callable

from freeim import im
from freeim.node.consumer import FreeIMConsumer
from freeim.node.lifecycle import ensure_node
from freeim.servers import channels
from freeim.testing import connected
from tests.asgi import application


@pytest.fixture(autouse=True)
def fresh_version_check():
    channels.lean.cache_clear()
    yield
    channels.lean.cache_clear()


def test_channels_4_gets_the_lean_loop():
    assert channels.lean()


@pytest.mark.django_db(transaction=True)  # channels' own loop closes old database connections on each event
@pytest.mark.parametrize("channels_version", ["4.3.2", "5.0.0"])
async def test_a_terminal_is_served_by_either_loop(channels_version, monkeypatch):
    monkeypatch.setattr(channels, "version", lambda package: channels_version)
    assert channels.lean() is (channels_version == "4.3.2")
    async with connected(application, 1) as alice:
        await alice.send_to(text_data='{"type": "ping"}')
        assert await alice.receive_frame() == {"type": "pong"}
        await im.asend_message(2, [1], "hi")
        assert (await alice.receive_frame())["data"] == "hi"
    assert await im.ahas_online(1) is False


def test_the_consumers_application_hands_back_its_coroutine_as_an_asgi_3_app():
    """channels' ``as_asgi`` awaited the consumer in a coroutine of its own, which every open socket kept."""
    app = FreeIMConsumer.as_asgi()
    assert not is_double_callable(app) and not inspect.iscoroutinefunction(app)
    assert app.consumer_class is FreeIMConsumer and app.__name__ == "FreeIMConsumer"


async def test_an_open_socket_keeps_no_scope():
    async with connected(application, 1) as alice:
        [connection] = list((await ensure_node()).registry.connections())
        assert connection.consumer.scope == {}
        await alice.send_to(text_data='{"type": "ping"}')
        assert await alice.receive_frame() == {"type": "pong"}
