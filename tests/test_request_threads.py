"""freeim.asgi.wrap runs the sync code of HTTP requests on threads kept from earlier requests
(freeim.request_threads)."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path

from freeim import request_threads
from tests.asgi import application

seen: list[threading.Thread] = []
both_in = threading.Barrier(2, timeout=5)


def where(request):
    seen.append(threading.current_thread())
    return HttpResponse(b"")


def meet(request):
    both_in.wait()  # a request on a thread another request holds would wait here for good: BrokenBarrierError
    return HttpResponse(b"")


urlpatterns = [path("where/", where), path("meet/", meet)]


async def get(path):
    request = ApplicationCommunicator(application, {
        "type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [], "http_version": "1.1",
        "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "root_path": ""})
    await request.send_input({"type": "http.request", "body": b""})
    start = await request.receive_output(5)
    await request.receive_output(5)
    return start["status"]


@pytest.fixture(autouse=True)
def _urls():
    seen.clear()
    with override_settings(ROOT_URLCONF=__name__):
        yield


async def test_a_request_runs_its_sync_code_on_the_thread_of_the_request_before():
    """Django starts a thread per request (and another to join it): about 1 ms of CPU per request on the CI VM."""
    assert [await get("/where/"), await get("/where/")] == [200, 200]
    assert seen[0] is seen[1] and seen[0] is not threading.main_thread()


async def test_requests_in_flight_run_their_sync_code_each_on_its_own_thread():
    assert await asyncio.gather(get("/meet/"), get("/meet/")) == [200, 200]


async def test_a_thread_still_running_a_cancelled_call_is_not_lent_again():
    release = threading.Event()
    async with request_threads.borrowed():
        stuck = asyncio.ensure_future(sync_to_async(lambda: (seen.append(threading.current_thread()),
                                                             release.wait(5)))())
        while not seen:
            await asyncio.sleep(0.01)
        stuck.cancel()  # a client that went away: the call goes on on its thread
    try:
        async with request_threads.borrowed():
            assert await sync_to_async(threading.current_thread)() is not seen[0]
    finally:
        release.set()
