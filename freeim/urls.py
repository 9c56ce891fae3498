"""freeim's REST API; mount it with ``path("im/", include("freeim.urls"))``."""

from django.urls import path, re_path

from .rest import views

app_name = "freeim"

urlpatterns = [
    path("connect/", views.ConnectView.as_view(), name="connect"),
    path("messages/", views.MessagesView.as_view(), name="messages"),
    path("messages/read/", views.ReadView.as_view(), name="messages-read"),
    path("online/", views.OnlineListView.as_view(), name="online-list"),
    path("online/<str:client_id>/", views.OnlineView.as_view(), name="online"),
    path("online/<str:client_id>/offline/", views.ForceOfflineView.as_view(), name="force-offline"),
    path("chans/", views.ChanListView.as_view(), name="chan-list"),
    path("chans/<str:chan>/join/", views.ChanJoinView.as_view(), name="chan-join"),
    path("chans/<str:chan>/leave/", views.ChanLeaveView.as_view(), name="chan-leave"),
    path("chans/<str:chan>/members/", views.ChanMembersView.as_view(), name="chan-members"),
    path("chans/<str:chan>/messages/", views.ChanMessagesView.as_view(), name="chan-messages"),
    path("broadcast/", views.BroadcastView.as_view(), name="broadcast"),
    re_path(r"", views.UnknownPathView.as_view(), name="unknown"),  # last: a JSON 404, not Django's HTML page
]
