"""The freeim demo: a chat page on the embedded default (one process, no Redis).

``python manage.py runserver`` serves it (daphne's runserver: HTTP and WebSocket).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",  # the API's schema at im/schema/ (freeim's `openapi` extra) and its Swagger UI,
    "drf_spectacular_sidecar",  # from local static files, never a CDN
    "freeim",
    "freeim.groups",
    "freeim.history",
    "demo_project.chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
ASGI_APPLICATION = "demo_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("FREEIM_DEMO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

# Basic first, so an unauthenticated call gets 401 with a WWW-Authenticate header
# (scripts and curl); the chat page sends each tab's own token (demo_project/chat/tokens.py),
# so two tabs are two users; sessions serve the admin's users and the tests' scripts.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
        "demo_project.chat.tokens.TabTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "freeim demo", "SERVE_INCLUDE_SCHEMA": False,
                        "SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR"}

# freeim. With no environment set: the embedded default (one process, no Redis; no
# SERVERS, so the connect endpoint answers with the host and scheme the request came
# in on and the demo works on any port). For a cluster, the same project runs as any
# node or as the business app (see demo_project/cluster.py):
#   FREEIM_REDIS_URL=redis://127.0.0.1:6379/0   (or redis+sentinel://host:26379,host:26380/<service>,
#                                                or redis+cluster://host:7000,host:7001)
#   FREEIM_SERVERS=127.0.0.1:6001,127.0.0.1:6002,127.0.0.1:6003   (host:port or ws(s):// bases)
#   FREEIM_SERVER=127.0.0.1:6001   (on a node; unset in the business app)
FREEIM = {
    key: value
    for key, value in {
        "REDIS_URL": os.environ.get("FREEIM_REDIS_URL"),
        "SERVERS": [s.strip() for s in os.environ.get("FREEIM_SERVERS", "").split(",") if s.strip()],
        "TOKEN_TTL": int(os.environ.get("FREEIM_TOKEN_TTL", "30")),
        "HEARTBEAT_TTL": float(os.environ.get("FREEIM_HEARTBEAT_TTL", "10")),
    }.items()
    if value
}
# Keep every message, so a reload shows the conversations (freeim.history).
FREEIM["HISTORY"] = "freeim.history.store.ModelHistory"
# FREEIM_GC_FREEZE=0 turns the node's garbage-collector freezing off (to compare in benchmarks).
FREEIM["GC_FREEZE"] = os.environ.get("FREEIM_GC_FREEZE", "1") != "0"
# FREEIM_MAX_INBOUND_RATE sets that limit (tests/e2e/test_flood.py raises it: backpressure alone bounds a flood).
if rate := os.environ.get("FREEIM_MAX_INBOUND_RATE"):
    FREEIM["MAX_INBOUND_RATE"] = int(rate)
# FREEIM_HANDSHAKE_TIMEOUT sets that limit (tests/e2e/test_flood.py shortens it); give daphne the same
# (demo_project/cluster.py daphne_command).
if handshake_timeout := os.environ.get("FREEIM_HANDSHAKE_TIMEOUT"):
    FREEIM["HANDSHAKE_TIMEOUT"] = float(handshake_timeout)
# FREEIM_DRAIN_GRACE: how long a node told to stop waits for its terminals to come back elsewhere (tests shorten it).
if drain_grace := os.environ.get("FREEIM_DRAIN_GRACE"):
    FREEIM["DRAIN_GRACE"] = float(drain_grace)
# FREEIM_REDIS_WAIT_REPLICAS: replicas that must have a send before it returns (default: 1 with a Sentinel URL, else 0).
if wait_replicas := os.environ.get("FREEIM_REDIS_WAIT_REPLICAS"):
    FREEIM["REDIS_WAIT_REPLICAS"] = int(wait_replicas)

if FREEIM.get("REDIS_URL"):
    from freeim.redis_url import ClusterTarget, channels_redis_host, parse

    # The project's own Channels code (not freeim, which has its own transport) gets
    # channels_redis on the same Redis (or Sentinel master), configured for redis-py 8:
    # blocking reads need socket_timeout=None. channels_redis does not run on Redis Cluster:
    # there, as in the embedded default, the demo has no channel layer (its code uses none).
    if not isinstance(parse(FREEIM["REDIS_URL"]), ClusterTarget):
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [channels_redis_host(FREEIM["REDIS_URL"])], "prefix": "demo-channels"},
            }
        }

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"freeim": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
