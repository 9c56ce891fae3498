"""The groups REST API; mount it with ``path("im/groups/", include("freeim.groups.urls"))``."""

from django.urls import path

from . import views

app_name = "freeim_groups"

urlpatterns = [
    path("", views.MyGroupsView.as_view(), name="mine"),
    path("<str:slug>/", views.GroupDetailView.as_view(), name="detail"),
    path("<str:slug>/members/", views.MembersView.as_view(), name="members"),
    path("<str:slug>/members/<str:client_id>/", views.MemberView.as_view(), name="member"),
    path("<str:slug>/messages/", views.GroupMessagesView.as_view(), name="messages"),
]
