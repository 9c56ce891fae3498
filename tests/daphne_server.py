"""A real daphne process serving the demo project (embedded mode) on a throwaway database.

Also a pytest plugin (``pytest_plugins = ["tests.daphne_server"]``): a failing test
that used the server gets the tail of daphne's log in its report, since what went
wrong on the server side is only there. PYTEST_DONT_REWRITE: the test module imports
this module before pytest registers it as a plugin, and it has no asserts to rewrite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo_project.cluster import ROOT, daphne_command, free_port
from freeim.conf import DEFAULTS
from tests.processes import answers, spawn, stop, tail, wait_until

PASSWORD = "not-a-secret-123"
#: Short, so the expired-token test waits two seconds rather than the default ten; not
#: one, so a ticket redeemed right away never expires on a busy machine.
TOKEN_TTL = 2

# One hash for every user: hashing costs ~0.3 s each (PBKDF2), the salt is of no use here.
CREATE_USERS = """
import json, os
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
spec = json.loads(os.environ["FREEIM_TEST_USERS"])
password = make_password(spec["password"])
ids = {name: User.objects.create(username=name, password=password, is_staff=staff).pk
       for name, staff in spec["users"].items()}
print(json.dumps(ids))
"""


class DaphneServer:
    """``daphne demo_project.asgi:application`` on a free loopback port, with users made up front."""

    def __init__(self, users: dict[str, bool], handshake_timeout: float = DEFAULTS["HANDSHAKE_TIMEOUT"],
                 **settings: str) -> None:
        """``settings``: more environment for the demo's settings (``FREEIM_MAX_INBOUND_RATE=...``)."""
        self.users = users  # name -> is_staff
        self.handshake_timeout = handshake_timeout
        self.ids: dict[str, int] = {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix="freeim-daphne-"))
        self.log_path = self.directory / "daphne.log"
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "demo_project.settings",
                    "FREEIM_DEMO_DB": str(self.directory / "db.sqlite3"), "FREEIM_TOKEN_TTL": str(TOKEN_TTL),
                    "FREEIM_HANDSHAKE_TIMEOUT": str(handshake_timeout), **settings,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        # A cluster configuration in the caller's environment would make this a business process.
        for name in ("FREEIM_REDIS_URL", "FREEIM_SERVERS", "FREEIM_SERVER"):
            self.env.pop(name, None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._manage("migrate", "--noinput")
        spec = json.dumps({"password": PASSWORD, "users": self.users})
        self.ids = json.loads(self._manage("shell", "-c", CREATE_USERS, FREEIM_TEST_USERS=spec).splitlines()[-1])
        command = daphne_command(self.port, handshake_timeout=self.handshake_timeout)
        self.process = spawn(command, self.env, self.log_path)
        try:
            wait_until(lambda: answers(self.port), self.process, self.log_path, "daphne")
        except RuntimeError:
            self.stop()
            raise

    def _manage(self, *args: str, **env: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **env},
                              capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def stop(self) -> None:
        """SIGTERM (daphne then stops the node), and kill it if it does not go."""
        if self.process is not None:
            stop(self.process, signal.SIGTERM)
            self.process = None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


def serve(users: dict[str, bool], **options: Any) -> Iterator[DaphneServer]:
    """The body of a session fixture: start a server (``options`` as :class:`DaphneServer` takes them),
    hand it out, stop it."""
    server = DaphneServer(users, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    server = getattr(item, "funcargs", {}).get("daphne")
    if report.failed and isinstance(server, DaphneServer):
        report.sections.append(("daphne log (tail)", server.log_tail()))
    return report
