"""freeim.asgi.wrap: what servers see, and the lifespan that starts and stops the node."""

import asyncio
import inspect

from asgiref.compatibility import is_double_callable
from asgiref.testing import ApplicationCommunicator
from channels.testing import WebsocketCommunicator

from freeim.backends import get_backend
from freeim.protocol import CloseCode
from tests.asgi import application


def test_the_wrapped_app_is_an_asgi3_app_to_servers():
    assert not is_double_callable(application)  # daphne, channels' testing (asgiref)
    assert asyncio.iscoroutinefunction(application)  # uvicorn's check
    assert inspect.iscoroutinefunction(application)  # hypercorn's: on 3.11 it saw a WSGI app


async def test_lifespan_starts_the_node_and_stops_it():
    lifespan = ApplicationCommunicator(application, {"type": "lifespan"})
    await lifespan.send_input({"type": "lifespan.startup"})
    assert await lifespan.receive_output(2) == {"type": "lifespan.startup.complete"}
    nodes = get_backend().nodes
    assert await nodes.alive_nodes() == ["local"]  # the node registered
    await lifespan.send_input({"type": "lifespan.shutdown"})
    assert await lifespan.receive_output(2) == {"type": "lifespan.shutdown.complete"}
    assert await nodes.alive_nodes() == []  # and left
    await lifespan.wait(1)


async def test_an_unknown_websocket_path_is_closed_with_4004():
    """Not a 500 from channels' URLRouter ("No route found"): a close code the terminal can act on."""
    terminal = WebsocketCommunicator(application, "/nope/deeper?x=1")
    assert (await terminal.connect())[0]
    assert await terminal.receive_output(1) == {"type": "websocket.close", "code": CloseCode.UNKNOWN_PATH}
    await terminal.wait(1)
