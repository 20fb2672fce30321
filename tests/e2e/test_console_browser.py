"""The web console (issue 14) in a real headless Chromium against a production-mode `rtdb serve`.

Starts the server with a fresh data dir and no credentials, so it makes an admin token and prints
the console URL carrying it; runs ``tests/browser/console.test.mjs`` (node's test runner,
playwright-core driving Debian's Chromium) with that URL. The browser test signs in with the
token, browses and edits data while a firebase@12 page listens, deploys rules, simulates, and
reads the live log and the metrics charts. Screenshots land in the test's tmp dir.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"

pytestmark = [pytest.mark.e2e]


def test_console_in_a_browser(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory()  # production mode: no --emulator, no credentials
    found = re.findall(r"Console: (http://\S+/\?token=\S+)", server.log())
    assert found, f"no console URL with a token in the server's output:\n{server.log()}"
    node = shutil.which("node")
    assert node is not None, "node is not installed"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "run `npm ci` in tests/browser (make install)"
    shots = tmp_path / "shots"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(CONSOLE_URL=found[-1], RTDB_PORT=str(server.port), CONSOLE_SHOTS=str(shots), RTDB_TMP=str(tmp_path))
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", "console.test.mjs"],
        cwd=BROWSER_DIR, env=env, capture_output=True, text=True, timeout=300,
    )
    sys.stdout.write(proc.stdout[-5000:])
    if proc.returncode != 0:
        pytest.fail(f"node --test console.test.mjs failed ({proc.returncode}):\n{proc.stdout[-30000:]}\n"
                    f"{proc.stderr[-5000:]}\n--- server log ---\n{server.log()[-10000:]}")
    assert sorted(p.name for p in shots.glob("*.png"))[:2] == ["01-login-refused.png", "02-tree.png"]
