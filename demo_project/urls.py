from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("im/groups/", include("freeim.groups.urls")),
    path("im/history/", include("freeim.history.urls")),
    path("im/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("im/schema/ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="schema-ui"),
    path("im/", include("freeim.urls")),
    path("", include("demo_project.chat.urls")),
]
