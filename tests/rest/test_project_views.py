"""A project's own DRF views calling freeim: with freeim's exception handler in REST_FRAMEWORK, a FreeIMError
they let through is freeim's JSON answer with its status, where DRF's own handler made it a 500."""

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import override_settings
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from freeim import im


class ShipOrder(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        im.join_chan(request.data["owner"], "order-42")  # the owner is offline: ClientOffline, 409
        return Response({"shipped": True})


def test_a_freeim_error_in_a_project_view_is_freeims_json_answer():
    request = APIRequestFactory().post("/ship/", {"owner": 5}, format="json")
    with override_settings(REST_FRAMEWORK={"EXCEPTION_HANDLER": "freeim.rest.views.freeim_exception_handler"}):
        answer = ShipOrder.as_view()(request)
    assert answer.status_code == 409
    assert answer.data == {"detail": "Client 5 is not online; chans are joined by online clients.",
                           "code": "client_offline"}


def test_other_errors_are_drfs_as_before():
    request = APIRequestFactory().post("/ship/", "not json", content_type="application/json")
    with override_settings(REST_FRAMEWORK={"EXCEPTION_HANDLER": "freeim.rest.views.freeim_exception_handler"}):
        answer = ShipOrder.as_view()(request)
    assert answer.status_code == 400 and "JSON parse error" in answer.data["detail"]


@pytest.mark.django_db(transaction=True)
def test_a_freeim_error_rolls_back_the_views_writes_under_atomic_requests(monkeypatch):
    """As DRF's handler does for its own errors; freeim's left what the view wrote before the error."""
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    request = APIRequestFactory().post("/ship/", {"owner": 5}, format="json")
    with override_settings(REST_FRAMEWORK={"EXCEPTION_HANDLER": "freeim.rest.views.freeim_exception_handler"}), \
            transaction.atomic():  # what ATOMIC_REQUESTS wraps a view in
        User.objects.create(username="written before the error")
        assert ShipOrder.as_view()(request).status_code == 409
    assert not User.objects.exists()
