"""The suite's ASGI application, wired as the README tells a project to."""

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

import freeim.asgi

application = freeim.asgi.wrap(ProtocolTypeRouter({
    "http": get_asgi_application(),
    "websocket": URLRouter(freeim.asgi.websocket_urlpatterns()),
}))
