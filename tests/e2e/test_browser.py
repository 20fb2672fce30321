"""The official ``firebase@12`` browser build in a real headless Chromium against a real ``rtdb serve``.

Runs every ``tests/browser/*.test.mjs`` file with node's built-in test runner: Debian's Chromium
(``/usr/bin/chromium``, or ``CHROMIUM_PATH``) driven by ``playwright-core``, the page served from
another loopback origin than rtdb. The tests fail, never skip, when Chromium or the npm packages
are missing: ``make install`` provides both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"
RTDB = str(Path(sys.executable).with_name("rtdb"))

pytestmark = [pytest.mark.e2e]

# console.test.mjs needs a production-mode server and its printed token: test_console_browser.py runs it.
TEST_FILES = sorted(p.name for p in BROWSER_DIR.glob("*.test.mjs") if p.name != "console.test.mjs")
assert TEST_FILES, f"no browser tests in {BROWSER_DIR}"


# All files in one run, in parallel (each has its own browser; the long waits overlap).
def test_browser(server: Any, tmp_path: Path) -> None:
    _run_node(TEST_FILES, server, tmp_path)


# Long-polling and the upgrade against two worker processes: a session's many short requests and
# its upgrade socket land on either worker.
def test_browser_against_two_workers(server_factory: Any, tmp_path: Path) -> None:
    _run_node(["longpolling.test.mjs", "upgrade.test.mjs"], server_factory("--emulator", "--workers", "2"), tmp_path)


def _run_node(test_files: list[str], server: Any, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "node is not installed"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "run `npm ci` in tests/browser (make install)"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(RTDB_PORT=str(server.port), RTDB_BIN=RTDB, RTDB_TMP=str(tmp_path))
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", f"--test-concurrency={len(test_files)}", *test_files],
        cwd=BROWSER_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    sys.stdout.write(proc.stdout[-5000:])
    if proc.returncode != 0:
        pytest.fail(
            f"node --test {' '.join(test_files)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-30000:]}\n{proc.stderr[-5000:]}"
            f"\n--- server log ---\n{server.log()[-10000:]}"
        )
