"""A node stopping without its store: the server's shutdown still completes, and says who cleans up."""

import logging

from django.test import override_settings

from demo_project.cluster import RedisServer
from tests.node.asgi_http import start_node, stop_node


async def test_a_node_stopped_while_redis_is_down_shuts_down_and_leaves_its_presence_to_the_reaper(caplog):
    redis = RedisServer()
    redis.start()
    try:
        with override_settings(FREEIM={"REDIS_URL": redis.url, "SERVERS": ["n1:1"], "SERVER": "n1:1",
                                       "HEARTBEAT_TTL": 1}):
            lifespan = await start_node()
            redis.stop()
            with caplog.at_level(logging.WARNING, "freeim.node"):
                await stop_node(lifespan)  # shutdown.complete, not a traceback in the server's lifespan
        assert any("its peers' reaper" in record.getMessage() for record in caplog.records)
    finally:
        redis.stop()
