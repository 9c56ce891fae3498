from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import freeim

urlpatterns = [
    path("admin/", admin.site.urls),
    path("im/groups/", include("freeim.groups.urls")),
    path("im/history/", include("freeim.history.urls")),
    # A fixed version: drf-spectacular would put ?version= into a header, and a newline there is a 500.
    path("im/schema/", SpectacularAPIView.as_view(api_version=freeim.__version__), name="schema"),
    path("im/schema/ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="schema-ui"),
    path("im/", include("freeim.urls")),
    path("", include("demo_project.chat.urls")),
]
