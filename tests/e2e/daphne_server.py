"""A real daphne process serving the demo project (embedded mode) on a throwaway database.

Also a pytest plugin (``pytest_plugins = ["tests.e2e.daphne_server"]``): a failing test
that used the server gets the tail of daphne's log in its report, since what went
wrong on the server side is only there. PYTEST_DONT_REWRITE: the test module imports
this module before pytest registers it as a plugin, and it has no asserts to rewrite.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from websockets.asyncio.client import ClientConnection, connect

from demo_project.cluster import ROOT, daphne_command, free_port
from freeim.conf import DEFAULTS
from tests.e2e.processes import answers, spawn, stop, tail, wait_until

PASSWORD = "not-a-secret-123"
#: Short, so the expired-token test waits two seconds rather than the default ten; not
#: one, so a ticket redeemed right away never expires on a busy machine.
TOKEN_TTL = 2
JSON = "application/json"
# The server is on loopback: never go through a proxy from the environment.
NO_PROXY = urllib.request.ProxyHandler({})

# One hash for every user: hashing costs ~0.3 s each (PBKDF2), the salt is of no use here.
# Each user also gets a session, as if logged in (the demo logs in by name only users
# without a password, and the server would check a Basic password with PBKDF2 per call).
CREATE_USERS = """
import json, os
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.test import Client
spec = json.loads(os.environ["FREEIM_TEST_USERS"])
password = make_password(spec["password"])
users = {name: User.objects.create(username=name, password=password, is_staff=staff)
         for name, staff in spec["users"].items()}
sessions = {}
for name, user in users.items():
    client = Client()
    client.force_login(user)
    sessions[name] = client.cookies["sessionid"].value
print(json.dumps({"ids": {name: user.pk for name, user in users.items()}, "sessions": sessions}))
"""


class DaphneServer:
    """``daphne demo_project.asgi:application`` on a free loopback port, with users made up front."""

    def __init__(self, users: dict[str, bool], handshake_timeout: float = DEFAULTS["HANDSHAKE_TIMEOUT"],
                 **settings: str) -> None:
        """``settings``: more environment for the demo's settings (``FREEIM_MAX_INBOUND_RATE=...``)."""
        self.users = users  # name -> is_staff
        self.handshake_timeout = handshake_timeout
        self.ids: dict[str, int] = {}
        self.sessions: dict[str, str] = {}  # name -> session key of a session logged in as that user
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
        made = json.loads(self._manage("shell", "-c", CREATE_USERS, FREEIM_TEST_USERS=spec).splitlines()[-1])
        self.ids, self.sessions = made["ids"], made["sessions"]
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


class Answer(NamedTuple):
    """An HTTP response as it came."""

    status: int
    content_type: str
    body: bytes


def fetch_answer(opener: urllib.request.OpenerDirector, method: str, url: str, data: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Answer:
    """The answer to one blocking HTTP request; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as response:
            return Answer(response.status, response.headers.get("Content-Type", ""), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.headers.get("Content-Type", ""), error.read())


def fetch(opener: urllib.request.OpenerDirector, method: str, url: str, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """``(status, decoded body)`` of one blocking HTTP request; error statuses are returned, not raised."""
    answer = fetch_answer(opener, method, url, data, headers)
    return answer.status, _decoded(answer.body)


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")  # an HTML error page, kept readable in assertions


class User:
    """One of the users made up front, speaking to the server as itself through a session.

    Scripts use Basic auth (see test_scripts_authenticate_with_basic_auth), but the
    server checks the password of every Basic call with PBKDF2, ~0.4 s each: with the
    session the server was started with, a module runs in a fraction of the time.
    """

    def __init__(self, server: DaphneServer, name: str) -> None:
        self.server = server
        self.name = name
        self.id = server.ids[name]
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(NO_PROXY, urllib.request.HTTPCookieProcessor(self.jar))

    def log_in(self) -> None:
        """Take the user's session, and a CSRF cookie from the chat page (session-authenticated writes need it)."""
        self.jar.set_cookie(_loopback_cookie("sessionid", self.server.sessions[self.name]))
        status, _ = self.request("GET", "/")
        assert status == 200 and self._cookie("csrftoken"), f"{self.name} could not log in ({status})"

    def _cookie(self, name: str) -> str | None:
        return next((cookie.value for cookie in self.jar if cookie.name == name), None)

    def request(self, method: str, path: str, data: bytes | None = None, content_type: str = JSON) -> tuple[int, Any]:
        """``(status, decoded body)`` of a blocking request as this user, with the raw body ``data``."""
        answer = self.answer(method, path, data, content_type)
        return answer.status, _decoded(answer.body)

    def answer(self, method: str, path: str, data: bytes | None = None, content_type: str = JSON) -> Answer:
        """The server's answer, as it came, to a blocking request as this user with the raw body ``data``."""
        headers = {"Content-Type": content_type}
        if token := self._cookie("csrftoken"):
            headers["X-CSRFToken"] = token
        return fetch_answer(self.opener, method, f"{self.server.base}{path}", data, headers)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, decoded JSON body)`` of a REST call as this user."""
        return await asyncio.to_thread(self.request, method, path, None if body is None else json.dumps(body).encode())

    async def ticket(self, meta: str = "") -> str:
        """The one-time WebSocket URL ``/im/connect/`` hands out."""
        status, body = await self.call("POST", "/im/connect/", {"meta": meta})
        assert status == 200 and body["client_id"] == self.id, body
        return body["url"]

    async def open(self) -> ClientConnection:
        """A fresh terminal of this user; the caller closes it."""
        return await connect(await self.ticket(), proxy=None)

    async def sees_online(self, other: User) -> bool:
        status, body = await self.call("GET", f"/im/online/{other.id}/")
        assert status == 200, body
        return body["online"]

    async def chan_members(self, chan: str) -> list[int]:
        status, body = await self.call("GET", f"/im/chans/{chan}/members/")
        assert status == 200, body
        return body["members"]


def _loopback_cookie(name: str, value: str) -> http.cookiejar.Cookie:
    """A cookie for 127.0.0.1, as if the server had set it."""
    return http.cookiejar.Cookie(
        version=0, name=name, value=value, port=None, port_specified=False, domain="127.0.0.1",
        domain_specified=False, domain_initial_dot=False, path="/", path_specified=True, secure=False,
        expires=None, discard=True, comment=None, comment_url=None, rest={})


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


@contextlib.contextmanager
def serving_a_group(users: dict[str, bool], group: str, member: str) -> Iterator[DaphneServer]:
    """The demo in daphne with ``users`` and the group ``group`` of ``member``; on exit, fails if the server's log
    holds a traceback (what a generated request broke shows only there)."""
    from tests.groups.helpers import MAKE_GROUP  # not at import: the flood test's worker process has no Django

    server = DaphneServer(users)
    server.start()
    try:
        server._manage("shell", "-c", MAKE_GROUP, GROUP=group, MEMBERS=str(server.ids[member]))
        yield server
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[max(0, log.index("Traceback") - 300):][:3000]
