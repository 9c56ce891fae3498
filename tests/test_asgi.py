"""freeim.asgi.wrap: what servers see, and the lifespan that starts and stops the node."""

import asyncio

from asgiref.compatibility import is_double_callable
from asgiref.testing import ApplicationCommunicator

from demo_project.asgi import application
from freeim import lifecycle


def test_the_wrapped_app_is_an_asgi3_app_to_servers():
    assert not is_double_callable(application)  # daphne, channels' testing (asgiref)
    assert asyncio.iscoroutinefunction(application)  # uvicorn's check


async def test_lifespan_starts_the_node_and_stops_it():
    lifespan = ApplicationCommunicator(application, {"type": "lifespan"})
    await lifespan.send_input({"type": "lifespan.startup"})
    assert await lifespan.receive_output(2) == {"type": "lifespan.startup.complete"}
    assert lifecycle._node is not None and lifecycle._started.done()
    await lifespan.send_input({"type": "lifespan.shutdown"})
    assert await lifespan.receive_output(2) == {"type": "lifespan.shutdown.complete"}
    assert lifecycle._node is None
    await lifespan.wait(1)
