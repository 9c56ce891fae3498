from django.urls import include, path

urlpatterns = [path("im/", include("freeim.urls"))]
