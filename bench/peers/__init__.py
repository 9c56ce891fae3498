"""The peers freeim is measured beside (``bench.targets``): a bare ``websockets`` server and Socket.IO 4.

The bare server is Python (:mod:`bench.peers.bare_server`). The Socket.IO peer is
Node.js (``socketio/``: ``server.js`` the node, ``emitter.js`` the business side);
its npm packages are installed by :func:`install_socketio` on first use, from the
committed ``package-lock.json`` into ``socketio/node_modules`` (not committed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

SOCKETIO = Path(__file__).resolve().parent / "socketio"
NODE_MAJOR = 18  # the oldest Node.js the npm packages support (redis 6)
_STAMP = SOCKETIO / "node_modules" / ".installed-from-lock"


def node_version() -> str | None:
    """The version of the ``node`` on PATH (``v20.20.2``), None if there is none."""
    node = shutil.which("node")
    if node is None:
        return None
    return subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()


def install_socketio() -> str | None:
    """Make the Socket.IO peer runnable: ``npm ci`` unless ``node_modules`` already matches the lock file.

    Returns why it cannot run (no node or npm, too old a node, npm failed), or None when it can.
    """
    version = node_version()
    if version is None or shutil.which("npm") is None:
        return "node and npm are not installed (e.g. apt-get install nodejs npm)"
    major = int(version.lstrip("v").split(".")[0] or 0)
    if major < NODE_MAJOR:
        return f"node {major} is too old (Socket.IO's Redis packages need {NODE_MAJOR}+)"
    lock = hashlib.sha256((SOCKETIO / "package-lock.json").read_bytes()).hexdigest()
    if _STAMP.exists() and _STAMP.read_text() == lock:
        return None
    result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=SOCKETIO,
                            capture_output=True, text=True, timeout=600)
    if result.returncode:
        return f"npm ci failed: {(result.stderr or result.stdout).strip()[-500:]}"
    _STAMP.write_text(lock)
    return None


def socketio_versions() -> str:
    """node's version and the installed versions of the Socket.IO peer's npm packages, for the report."""
    manifest = json.loads((SOCKETIO / "package.json").read_text())
    versions = [f"node {node_version()}"]
    for name in manifest["dependencies"]:
        installed = SOCKETIO / "node_modules" / name / "package.json"
        if installed.exists():
            versions.append(f"{name} {json.loads(installed.read_text())['version']}")
    return ", ".join(versions)
