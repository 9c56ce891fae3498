"""ASGI entry point: Django for HTTP, freeim's consumer for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

if settings.DEBUG:  # the demo's pages need their scripts; runserver serves them, plain daphne does not
    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

import freeim.asgi  # noqa: E402

application = freeim.asgi.wrap(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": URLRouter(freeim.asgi.websocket_urlpatterns()),
        }
    )
)
