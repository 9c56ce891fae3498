from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("demo/login/", views.LoginView.as_view(), name="login"),
    path("demo/me/", views.MeView.as_view(), name="me"),
    path("demo/users/", views.UsersView.as_view(), name="users"),
]
