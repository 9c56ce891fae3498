"""ASGI entry point: Django for HTTP, freeim's consumer for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_asgi_app = get_asgi_application()

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
