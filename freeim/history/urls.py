"""The history REST API; mount it with ``path("im/history/", include("freeim.history.urls"))``."""

from django.urls import path

from . import views

app_name = "freeim_history"

urlpatterns = [
    path("conversations/", views.ConversationsView.as_view(), name="conversations"),
    path("conversations/<str:client_id>/", views.ConversationView.as_view(), name="conversation"),
    path("chans/<str:chan>/", views.ChanHistoryView.as_view(), name="chan"),
]
