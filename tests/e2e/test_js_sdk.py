"""The unmodified official Firebase JS SDK (npm ``firebase@12``) against a real ``rtdb serve``.

Runs every ``tests/node/*.test.mjs`` file with node's built-in test runner. The
server is an emulator-mode subprocess on a free port with a temporary data
directory; tests that restart a server start their own from ``RTDB_BIN``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = shutil.which("node")
RTDB = str(Path(sys.executable).with_name("rtdb"))

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (NODE_DIR / "node_modules" / "firebase").is_dir(), reason="run `npm ci` in tests/node first"
    ),
]

TEST_FILES = sorted(p.name for p in NODE_DIR.glob("*.test.mjs"))


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_official_js_sdk(test_file: str, server: Any, tmp_path: Path) -> None:
    _run_node(test_file, server, tmp_path)


# The same files against two worker processes: the apps of one test (two in the transaction
# and increment tests) land on either worker. reconnect.test.mjs starts servers of its own.
@pytest.mark.parametrize("test_file", [f for f in TEST_FILES if f != "reconnect.test.mjs"])
def test_official_js_sdk_against_two_workers(test_file: str, server_factory: Any, tmp_path: Path) -> None:
    _run_node(test_file, server_factory("--emulator", "--workers", "2"), tmp_path, workers=2)


# The same files with writes in a writer process of their own (`--write-process`).
# yjs.test.mjs is left out: Yjs documents are not served with --write-process (docs/architecture.md).
@pytest.mark.parametrize("test_file", [f for f in TEST_FILES if f not in ("reconnect.test.mjs", "yjs.test.mjs")])
def test_official_js_sdk_with_a_writer_process(test_file: str, server_factory: Any, tmp_path: Path) -> None:
    _run_node(test_file, server_factory("--emulator", "--write-process"), tmp_path)


def _run_node(test_file: str, server: Any, tmp_path: Path, *, workers: int = 1) -> None:
    assert NODE is not None
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(RTDB_PORT=str(server.port), RTDB_BIN=RTDB, RTDB_TMP=str(tmp_path), RTDB_WORKERS=str(workers))
    proc = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", test_file],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"node --test {test_file} failed ({proc.returncode}):\n{proc.stdout[-20000:]}\n{proc.stderr[-5000:]}"
            f"\n--- server log ---\n{server.log()[-10000:]}"
        )
