"""Starting, watching and stopping the server processes of the end-to-end tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from demo_project.cluster import ROOT

STARTUP_TIMEOUT = 30
#: Past a draining node's grace (tests/e2e/test_drain.py gives 10 s), with room for its shutdown.
STOP_TIMEOUT = 30


def spawn(command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """Start a server process (in the checkout, or ``cwd``) with its output appended to ``log`` (a restart keeps
    the history)."""
    with log.open("ab") as output:  # unbuffered: the log is complete even after a SIGKILL
        return subprocess.Popen(command, cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=output,
                                stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` and wait for the exit; SIGKILL a process that ignores SIGTERM for too long."""
    if process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise RuntimeError(f"process {process.pid} did not exit within {STOP_TIMEOUT} s of signal {signum}") from None


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes] | None, log: Path, what: str) -> None:
    """Poll ``ready()`` while ``process`` runs; fail with its log tail if it exits or takes too long."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready():
        if process is None or process.poll() is not None:
            raise RuntimeError(f"{what} is not running:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {STARTUP_TIMEOUT} s:\n{tail(log)}")
        time.sleep(0.05)


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as error:
        return f"(no log: {error})"
