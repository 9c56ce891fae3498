"""freeim.servers.channels: freeim's consumer loop on channels 4, and channels' own loop on any other version."""

import pytest

from freeim import im
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
