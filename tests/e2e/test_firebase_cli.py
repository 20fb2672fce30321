"""The official ``firebase`` CLI (npm ``firebase-tools``, pinned in tests/tools) runs its
database commands against a real ``rtdb serve``, as against Google's emulator:
``database:get``, ``set``, ``update``, ``push`` and ``remove`` with a ``demo-*`` project.

What firebase-tools (15.x) needs, found in its source (``lib/commands/database-*.js``,
``lib/requireAuth.js``, ``lib/management/database.js``):

* a credential before any command: ``requirePermissions`` calls ``requireAuth`` even for
  the emulator and a demo project. A made-up ``FIREBASE_TOKEN`` passes (no Google login);
  the token refresh it then tries is pointed at the rtdb server (``FIREBASE_TOKEN_URL``),
  fails fast, and is ignored. Requests to the emulator carry ``Bearer owner``.
* ``--instance``: without it the CLI asks Google for the project's default instance.
* ``FIREBASE_DATABASE_EMULATOR_HOST`` with ``http://``: the instance lookup fails offline and
  its emulator fallback builds a URL from the bare ``host:port``, which throws "Invalid URL".
* the instance as the server's default namespace (``--namespace``): ``database:get`` and
  ``database:remove`` send the path without ``?ns=``.
* ``database:remove`` asks "Do you want to continue?" whenever the emulator variable is set,
  ``--force`` or not (it then removes through the emulator all the same): we answer ``y``.

Each CLI start costs about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

TOOLS_DIR = Path(__file__).resolve().parents[1] / "tools"
FIREBASE = TOOLS_DIR / "node_modules" / ".bin" / "firebase"
NS = "demo-rtdb-default-rtdb"  # the default instance name of project demo-rtdb

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(not FIREBASE.exists(), reason="run `npm ci` in tests/tools first"),
]


@pytest.fixture
def cli_server(server_factory: Any) -> Any:
    return server_factory("--emulator", "--namespace", NS)


def firebase(server: Any, home: Path, *args: str, answer: str = "") -> str:
    """Run ``firebase <args> --project demo-rtdb --instance NS``; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        HOME=str(home),  # no user config, no cached login
        FIREBASE_DATABASE_EMULATOR_HOST=server.url,
        FIREBASE_TOKEN="not-a-google-login",
        FIREBASE_TOKEN_URL=server.url,
    )
    proc = subprocess.run(
        [str(FIREBASE), *args, "--project", "demo-rtdb", "--instance", NS],
        cwd=TOOLS_DIR, env=env, input=answer, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, f"firebase {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def data(server: Any, path: str = "") -> Any:
    return httpx.get(f"{server.url}/{path}.json", params={"ns": NS}).json()


def put(server: Any, path: str, value: Any) -> None:
    r = httpx.put(f"{server.url}/{path}.json", params={"ns": NS}, json=value, headers={"Authorization": "Bearer owner"})
    assert r.status_code == 200, r.text


def test_database_set_writes_inline_data_and_a_file(cli_server: Any, tmp_path: Path) -> None:
    firebase(cli_server, tmp_path, "database:set", "/a", "--data", '{"x": 1, "y": [true, "s"]}', "--force")
    assert data(cli_server, "a") == {"x": 1, "y": [True, "s"]}
    file = tmp_path / "leaf.json"
    file.write_text('"from a file"')
    firebase(cli_server, tmp_path, "database:set", "/b/c", str(file), "--force")
    assert data(cli_server) == {"a": {"x": 1, "y": [True, "s"]}, "b": {"c": "from a file"}}


def test_database_get_prints_the_data(cli_server: Any, tmp_path: Path) -> None:
    put(cli_server, "", {"users": {"ada": {"age": 36}, "bob": {"age": 7}}, "n": 1})
    out = tmp_path / "out.json"  # stdout also carries the CLI's notice about the emulator
    firebase(cli_server, tmp_path, "database:get", "/users", "--output", str(out))
    assert json.loads(out.read_text()) == {"ada": {"age": 36}, "bob": {"age": 7}}


def test_database_update_merges_children(cli_server: Any, tmp_path: Path) -> None:
    put(cli_server, "u", {"keep": 1, "change": 2})
    firebase(cli_server, tmp_path, "database:update", "/u", "--data", '{"change": 3, "new": 4}', "--force")
    assert data(cli_server, "u") == {"keep": 1, "change": 3, "new": 4}


def test_database_push_adds_a_child_with_a_push_id(cli_server: Any, tmp_path: Path) -> None:
    out = firebase(cli_server, tmp_path, "database:push", "/list", "--data", '{"msg": "hi"}')
    (key, value), = data(cli_server, "list").items()
    assert value == {"msg": "hi"} and len(key) == 20 and key in out


def test_database_remove_deletes_a_subtree_and_a_leaf(cli_server: Any, tmp_path: Path) -> None:
    put(cli_server, "", {"tree": {"a": {"b": 1}, "c": 2}, "leaf": "text", "kept": True})
    firebase(cli_server, tmp_path, "database:remove", "/tree", "--force", answer="y\n")
    firebase(cli_server, tmp_path, "database:remove", "/leaf", "--force", answer="y\n")
    assert data(cli_server) == {"kept": True}
