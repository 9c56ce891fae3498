"""daphne is an optional extra: a project served by uvicorn or hypercorn installs freeim without it (nor Twisted,
nor autobahn), and everything but daphne's own direct writes works."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WITHOUT_DAPHNE = """
import sys
for name in ("daphne", "twisted", "autobahn"):
    sys.modules[name] = None  # as if not installed: importing it raises ImportError

import asyncio, json, django
django.setup()
from asgiref.testing import ApplicationCommunicator  # channels' communicator imports daphne
from tests.asgi import application  # freeim.asgi.wrap, the consumer, the node
from freeim import im
from freeim.servers import daphne
from freeim.testing import isolated  # what the pytest plugin loads in every test

async def main():
    path, query = (await im.aprev_connect_server(1, base="ws://testserver")).split("/", 3)[3].split("?")
    alice = ApplicationCommunicator(application, {"type": "websocket", "path": "/" + path,
                                                  "query_string": query.encode(), "headers": [], "subprotocols": []})
    await alice.send_input({"type": "websocket.connect"})
    assert (await alice.receive_output(2))["type"] == "websocket.accept"
    await im.asend_message(2, [1], "no daphne needed")
    print(json.loads((await alice.receive_output(2))["text"])["data"], "|", daphne.write_path())
    await alice.send_input({"type": "websocket.disconnect", "code": 1000})

with isolated(database=False):
    asyncio.run(main())
"""


def test_freeim_runs_without_daphne_installed():
    run = subprocess.run([sys.executable, "-c", WITHOUT_DAPHNE], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "no daphne needed | frames sent through ASGI send (the server is not daphne)"
