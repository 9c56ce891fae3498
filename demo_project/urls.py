from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("im/groups/", include("freeim.groups.urls")),
    path("im/history/", include("freeim.history.urls")),
    path("im/", include("freeim.urls")),
    path("", include("demo_project.chat.urls")),
]
