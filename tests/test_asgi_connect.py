"""Under freeim.asgi.wrap, connect/ is served by Django's sync handler in one call on a kept thread
(freeim.asgi_connect), with the answers Django's ASGI handler gives."""

import base64
import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth.models import User
from django.core.asgi import get_asgi_application
from django.core.signals import request_finished, request_started
from django.test import override_settings

from freeim import asgi_connect, request_threads
from tests.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
BASIC = b"Basic " + base64.b64encode(b"alice:pw")
JSON = b"application/json"


async def post(app, body=b"{}", method="POST", path="/im/connect/", authorization=BASIC, content_type=JSON):
    """``method`` ``path`` on ``app``: the answer's status, headers and body."""
    headers = [(b"host", b"testserver"), (b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if authorization:
        headers.append((b"authorization", authorization))
    request = ApplicationCommunicator(app, {
        "type": "http", "method": method, "path": path, "query_string": b"", "headers": headers,
        "http_version": "1.1", "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000),
        "root_path": ""})
    await request.send_input({"type": "http.request", "body": body})
    start = await request.receive_output(5)
    answer = await request.receive_output(5)
    await request.wait(1)
    return start["status"], sorted(start["headers"]), answer["body"]


@pytest.fixture
def alice(transactional_db):
    return User.objects.create_user("alice", password="pw")


async def test_connect_is_served_in_one_call_on_a_kept_thread(alice):
    """Django's ASGI handler makes four calls to the request's thread for a sync view (the request_started
    receivers, the view, rendering, closing): on a busy daphne each hand-over costs more CPU than the view."""
    threads = []

    def record(**kwargs):
        threads.append(threading.current_thread())

    calls = {thread: thread.submitted for thread in request_threads._idle}  # so far
    request_started.connect(record)
    request_finished.connect(record)
    try:
        status, _, body = await post(application)
    finally:
        request_started.disconnect(record)
        request_finished.disconnect(record)
    assert status == 200 and json.loads(body)["url"].startswith("ws://testserver/ws?token="), body
    served, = {*threads}  # the signals (and Basic authentication's database reads) ran on one thread,
    assert served is not threading.main_thread() and len(threads) == 2  # not on the loop's
    kept, = (thread for thread in request_threads._idle if served in thread._threads)
    assert kept.submitted - calls.get(kept, 0) == 1


@pytest.mark.parametrize(("method", "body", "authorization", "content_type"), [
    ("POST", b"{}", None, JSON),  # 401 with its WWW-Authenticate
    ("POST", b"{", BASIC, JSON),  # JSON parse error
    ("POST", b'{"since": 17, "join": "room"}', BASIC, JSON),  # DRF's field errors
    ("POST", b'{"since": "x.1"}', BASIC, JSON),  # freeim's invalid_message
    ("POST", b"meta=x", BASIC, b"application/x-www-form-urlencoded"),  # 415
    ("GET", b"", BASIC, JSON),  # 405 with its Allow
    ("OPTIONS", b"", BASIC, JSON),  # DRF's metadata
    ("POST", b"[" * 70 + b"]" * 70, BASIC, JSON),  # too_deep
    ("POST", b'{"meta": "' + b"x" * 300 + b'"}', BASIC, JSON),  # 413, under the override below
])
async def test_its_answers_are_those_of_djangos_asgi_handler(alice, method, body, authorization, content_type):
    plain_django = get_asgi_application()
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=200):
        one_call = await post(application, body, method, authorization=authorization, content_type=content_type)
        assert one_call == await post(plain_django, body, method, authorization=authorization,
                                      content_type=content_type)
    assert one_call[0] >= 400 or method == "OPTIONS"


async def test_a_successful_answer_is_that_of_djangos_asgi_handler_but_for_its_token(alice):
    one_call, plain = await post(application), await post(get_asgi_application())
    assert one_call[:2] == plain[:2]
    assert json.loads(one_call[2]).keys() == json.loads(plain[2]).keys() == {"url", "client_id", "server"}


def test_only_the_connect_route_is_served_so():
    def scope(path, root_path=""):
        return {"type": "http", "path": path, "root_path": root_path}

    assert asgi_connect.serves(scope("/im/connect/")) and asgi_connect.serves(scope("/app/im/connect/", "/app"))
    assert not any(asgi_connect.serves(scope(path)) for path in ("/im/connect", "/im/messages/", "/connect/"))
