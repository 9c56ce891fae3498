"""From ``pip install`` to a tested feature in a new project, on every supported Python, as the README says.

The package is built (sdist, then the wheel from the sdist, in build's isolated environment, so the build
requirements are the pyproject's), installed with its server extras into a fresh virtualenv, and a project made
by ``django-admin startproject myproject`` gets the README's *Install into your project* and *Testing your
project* snippets as written (``...`` standing for what is there already). Then the project's own pytest run
(freeim's plugin loaded by its entry point) and Django's test runner pass, and under daphne, uvicorn and hypercorn
a message sent through the REST API arrives over a real WebSocket.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from demo_project.cluster import ROOT, free_port
from tests import readme
from tests.e2e.processes import answers, spawn, stop, tail, wait_until

PYTHONS = ["3.11", "3.12", "3.13"]
TESTING = ["pytest>=8", "pytest-django>=4.9", "pytest-asyncio>=1.0"]
PASSWORD = "smoke-test-password"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


#: Not part of a source tree: what the checkout's own runs leave in it.
LEFT_BY_RUNS = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "dist", "results", ".*_cache",
                                      ".hypothesis", "*.sqlite3", ".venv", ".artifacts")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # From a copy: setuptools writes its egg-info into the tree it builds, and one in the checkout would load
    # freeim's pytest plugin a second time (by its entry point) in this suite's later runs.
    source = tmp_path_factory.mktemp("source") / "django-freeim"
    shutil.copytree(ROOT, source, ignore=LEFT_BY_RUNS)
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [sdist] = out.glob("django_freeim-*.tar.gz")
    [wheel] = out.glob("django_freeim-*.whl")
    assert {"LICENSE", "py.typed", "freeim.js", "liveops.js", "liveops.css", "liveops.html", "app_index.html"} <= {
        Path(name).name for name in _wheel_files(wheel)}
    assert sdist.stat().st_size > 0
    return wheel


def _wheel_files(wheel: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


class NewProject:
    """``startproject myproject`` in a fresh virtualenv of one Python, with the wheel installed."""

    def __init__(self, python: str, wheel: Path, directory: Path) -> None:
        self.python = python
        self.directory = directory
        self.venv = directory / "venv"
        self.bin = self.venv / "bin"
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV")
                    and not key.startswith("FREEIM_")}
        self.env["PATH"] = f"{self.bin}{os.pathsep}{self.env['PATH']}"
        self.run(interpreter(python), "-m", "venv", str(self.venv))
        self.run("python", "-m", "pip", "install", "--quiet", f"{wheel}[daphne,uvicorn,hypercorn]", *TESTING)

    def run(self, *command: str, timeout: float = 600) -> str:
        done = subprocess.run(command, cwd=self.directory, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done.stdout

    def start_project(self) -> None:
        self.run("django-admin", "startproject", "myproject", ".")
        [install] = readme.snippets("Install into your project")
        for name, code in readme.by_file(install).items():
            path = self.directory / "myproject" / name
            if name == "asgi.py":
                path.write_text(code)  # the README gives the whole file
            else:  # the README's lines come after what is there, "..." standing for it
                path.write_text(path.read_text() + "\n" + _with_what_is_there(code))
        [ini] = readme.snippets("Testing your project", "ini")
        (self.directory / "pytest.ini").write_text(ini.split("\n", 1)[1])
        pytest_tests, testcase_tests = readme.snippets("Testing your project")
        (self.directory / "test_readme.py").write_text(pytest_tests)
        app = self.directory / "myproject" / "tests.py"  # where Django's runner looks: the project package
        app.write_text(testcase_tests)
        # Beside the README's: receivers that write each presence signal down, to see what a shutdown did.
        (self.directory / "presence.py").write_text(PRESENCE_RECEIVERS)
        with (self.directory / "myproject" / "settings.py").open("a") as settings:
            settings.write("\nINSTALLED_APPS += [\"presence.PresenceConfig\"]\n")
        self.env["PRESENCE_LOG"] = str(self.directory / "presence.log")
        self.run("python", "manage.py", "check", "--fail-level", "WARNING")
        self.run("python", "manage.py", "migrate", "--noinput", "-v", "0")


def interpreter(version: str) -> str:
    """A ``python<version>`` that runs: pyenv's own build (its shims answer only for the selected versions),
    else one on the PATH. The supported Pythons are installed on CI's machine: a missing one fails, never skips."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    builds = sorted(pyenv.glob(f"versions/{version}.*/bin/python{version}"))
    for candidate in [*builds, shutil.which(f"python{version}")]:
        if candidate and subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return str(candidate)
    raise AssertionError(f"no working python{version}: install it (pyenv install {version}) to test on it")


def _with_what_is_there(code: str) -> str:
    """``name = [..., more]`` becomes ``name = [*name, more]``: the README's way to say "add to it"."""
    return re.sub(r"^(\w+) = \[(.*)\.\.\.", lambda m: f"{m[1]} = [{m[2]}*{m[1]}", code, flags=re.M)


PRESENCE_RECEIVERS = """
import os

from django.apps import AppConfig


def record(signal, client_id, server, **kwargs):
    with open(os.environ["PRESENCE_LOG"], "a") as log:
        log.write(f"{'online' if signal.name == 'client_online' else 'offline'} {client_id}\\n")


class PresenceConfig(AppConfig):
    name = "presence"

    def ready(self):
        from freeim.signals import client_offline, client_online

        client_online.connect(record)
        client_offline.connect(record)
"""

CREATE_USERS = f"""
from django.contrib.auth.models import User
for name in ("alice", "bob"):
    User.objects.create_user(name, password="{PASSWORD}")
print(User.objects.get(username="alice").pk)
"""

SERVERS = {
    "daphne": lambda port: ["daphne", "-b", "127.0.0.1", "-p", str(port), "myproject.asgi:application"],
    "uvicorn": lambda port: ["uvicorn", "--port", str(port), "myproject.asgi:application"],
    "hypercorn": lambda port: ["hypercorn", "--bind", f"127.0.0.1:{port}", "myproject.asgi:application"],
}


def post(base: str, path: str, user: str, body: dict[str, object]) -> dict[str, object]:
    credentials = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(f"{base}{path}", json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Basic {credentials}"})
    with NO_PROXY.open(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def projects(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, NewProject]:
    """A new project per Python, made side by side: most of the time goes to pip, waiting on the index."""

    def make(python: str) -> NewProject:
        made = NewProject(python, wheel, tmp_path_factory.mktemp(f"python{python}"))
        made.start_project()
        return made

    with concurrent.futures.ThreadPoolExecutor(len(PYTHONS)) as pool:
        return dict(zip(PYTHONS, pool.map(make, PYTHONS), strict=True))


@pytest.fixture(params=PYTHONS, ids=[f"python{v}" for v in PYTHONS])
def project(request: pytest.FixtureRequest, projects: dict[str, NewProject]) -> NewProject:
    return projects[request.param]


async def test_a_new_project_as_the_readme_says(project: NewProject) -> None:
    # The README's tests, under the project's own pytest (the plugin comes from the wheel's entry point)...
    ran = project.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme.py")
    assert "1 passed" in ran, ran
    # ...and under Django's runner (FreeIMTestMixin).
    project.run("python", "manage.py", "test", "myproject", "-v", "0")

    alice = int(project.run("python", "manage.py", "shell", "-c", CREATE_USERS).split()[-1])
    for server, command in SERVERS.items():
        presence = Path(project.env["PRESENCE_LOG"])
        presence.unlink(missing_ok=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = project.directory / f"{server}.log"
        process = spawn(command(port), project.env, log, project.directory)
        try:
            wait_until(functools.partial(answers, port), process, log, server)
            url = post(base, "/im/connect/", "alice", {})["url"]
            assert isinstance(url, str) and url.startswith(f"ws://127.0.0.1:{port}/ws?token=")
            async with connect(url) as terminal:
                sent = post(base, "/im/messages/", "bob", {"to": [alice], "data": {"text": f"hi under {server}"}})
                frame = json.loads(await terminal.recv())
                assert (frame["id"], frame["data"]) == (sent["id"], {"text": f"hi under {server}"}), frame
                if server != "hypercorn" or project.python == "3.11":
                    # The node goes with the server: alice, still connected, is offline at once.
                    stop(process, signal.SIGTERM)
            # hypercorn on Python 3.12+ does not stop while a socket is open (pgjones/hypercorn#308, see the
            # README): its node stops once the terminal has gone.
            stop(process, signal.SIGTERM)
            assert process.returncode in (0, -signal.SIGTERM), tail(log)
            assert presence.read_text().split("\n") == [f"online {alice}", f"offline {alice}", ""]
        finally:
            stop(process, signal.SIGKILL)
