"""Settings of every freeim process of the benchmark: nodes and the business app (REST connect).

Like the demo, one module runs as any process: ``FREEIM_REDIS_URL``, ``FREEIM_SERVERS``
and, on a node, ``FREEIM_SERVER`` come from the environment (``demo_project.cluster.cluster_env``).
No database, sessions or middleware: the REST API authenticates with per-client
HMAC credentials (:mod:`bench.freeim_site.auth`), the way a business app would put
its own auth in front of ``connect/``.
"""

import os

SECRET_KEY = os.environ.get("BENCH_SECRET") or "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "freeim"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.freeim_site.urls"
ASGI_APPLICATION = "demo_project.asgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}  # never queried
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["bench.freeim_site.auth.BenchAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
}

FREEIM = {
    "REDIS_URL": os.environ["FREEIM_REDIS_URL"],
    "SERVERS": [s for s in os.environ.get("FREEIM_SERVERS", "").split(",") if s],
    # A loadgen may fetch a token a little before its handshake gets its turn.
    "TOKEN_TTL": int(os.environ.get("FREEIM_TOKEN_TTL", "60")),
}
if handshake_timeout := os.environ.get("FREEIM_HANDSHAKE_TIMEOUT"):  # bench/storm.py gives its nodes more
    FREEIM["HANDSHAKE_TIMEOUT"] = float(handshake_timeout)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"freeim": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
