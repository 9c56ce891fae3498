"""Settings of the baseline: no database, no middleware, channels_redis.

``BENCH_LAYER`` picks the layer: ``core`` (``RedisChannelLayer``, the default and
the one the channels docs lead with) or ``pubsub`` (``RedisPubSubChannelLayer``).
Library defaults, except ``socket_timeout=None``: redis-py 8's 5 s default kills
the layer's 5 s blocking read and a consumer with it (research/perf-baseline.md,
defect 1); freeim's demo sets the same. ``BENCH_LAYER_CAPACITY`` overrides the
layer's per-channel capacity (default 100).
"""

import os

SECRET_KEY = "bench-baseline"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
ASGI_APPLICATION = "bench.baseline.asgi.application"
USE_TZ = True

_host = {"address": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"), "socket_timeout": None}
_core = os.environ.get("BENCH_LAYER", "core") == "core"
_config: dict[str, object] = {"hosts": [_host]}
if _core and os.environ.get("BENCH_LAYER_CAPACITY"):
    _config["capacity"] = int(os.environ["BENCH_LAYER_CAPACITY"])
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": f"channels_redis.{'core.RedisChannelLayer' if _core else 'pubsub.RedisPubSubChannelLayer'}",
        "CONFIG": _config,
    }
}
