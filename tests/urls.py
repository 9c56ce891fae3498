from django.contrib import admin
from django.urls import include, path

import freeim.metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("im/groups/", include("freeim.groups.urls")),
    path("im/history/", include("freeim.history.urls")),
    path("im/", include("freeim.urls")),
    path("ops/metrics", freeim.metrics.view),  # as the README's Metrics mounts it in a business project
]
