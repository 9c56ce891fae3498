"""A node stopping without its store: the server's shutdown still completes, and says who cleans up."""

import logging

from tests.node.asgi_http import on_private_redis, start_node, stop_node


async def test_a_node_stopped_while_redis_is_down_shuts_down_and_leaves_its_presence_to_the_reaper(caplog):
    with on_private_redis() as redis:
        lifespan = await start_node()
        redis.stop()
        with caplog.at_level(logging.WARNING, "freeim.node"):
            await stop_node(lifespan)  # shutdown.complete, not a traceback in the server's lifespan
    assert any("its peers' reaper" in record.getMessage() for record in caplog.records)
