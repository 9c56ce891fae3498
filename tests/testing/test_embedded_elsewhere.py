"""The embedded default is loud outside its server process: a shell's, a worker's or a WSGI process's helper
call raises, where it used to read nobody online and send into the void."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from freeim import im
from freeim.backends import host_here
from freeim.exceptions import NoEmbeddedNode
from freeim.history.models import ChanMessage, PrivateMessage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def another_process():
    """This process as a shell or a worker sees it: it runs no server, so it hosts no embedded node."""
    hosted = host_here(False)
    yield
    host_here(hosted)


@pytest.mark.usefixtures("another_process")
@pytest.mark.parametrize("call", [
    lambda: im.has_online(1),
    lambda: im.send_message(2, [1], "hi"),
    lambda: im.send_broadcast_message("hi"),
    lambda: im.get_client_list_by_online(),
    lambda: im.prev_connect_server(1),
])
def test_every_helper_raises_outside_the_server_process(call):
    with pytest.raises(NoEmbeddedNode, match=r"REDIS_URL.*In tests, freeim\.testing"):
        call()


@pytest.mark.usefixtures("another_process")
async def test_async_helpers_raise_too():
    with pytest.raises(NoEmbeddedNode):
        await im.asend_message(2, [1], "hi")


@pytest.mark.usefixtures("another_process")
@pytest.mark.django_db
def test_the_rest_api_answers_a_json_500_that_says_why():
    client = APIClient()
    client.force_authenticate(User.objects.create_user("alice"))
    answer = client.post("/im/connect/", {}, format="json")
    assert answer.status_code == 500
    assert answer.json()["code"] == "no_embedded_node"
    assert "REDIS_URL" in answer.json()["detail"]


@pytest.mark.parametrize("code", [
    "from freeim import im; print(im.has_online(1))",
    # Importing the application is not serving it: it made the shell a silent host of its own empty node.
    "import demo_project.asgi; from freeim import im; print(im.has_online(1))",
])
def test_a_real_shell_of_the_demo_fails_loudly(code):
    shell = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert shell.returncode != 0
    assert "NoEmbeddedNode" in shell.stderr and "FREEIM['REDIS_URL']" in shell.stderr
    assert "False" not in shell.stdout  # no silent answer


@pytest.mark.usefixtures("another_process")
@pytest.mark.django_db
def test_a_refused_send_is_not_kept_in_the_history(settings):
    """The history kept it before the backend refused: a ghost message per retry, never delivered."""
    settings.FREEIM = {"HISTORY": "freeim.history.store.ModelHistory"}
    with pytest.raises(NoEmbeddedNode):
        im.send_message("system", [3], {"t": 1})
    with pytest.raises(NoEmbeddedNode):
        im.send_chan_message("system", "lobby", {"t": 1})
    assert not PrivateMessage.objects.exists() and not ChanMessage.objects.exists()
