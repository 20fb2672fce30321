"""Every example in examples/ runs against a real `rtdb serve` (and the notebook through nbclient)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e.sdk_helpers import fresh_ns

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], server: Any) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=_env())
    if proc.returncode != 0:
        pytest.fail(
            f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n--- server ---\n{server.log()[-5000:]}"
        )
    return proc.stdout


def test_chat_example(server_factory: Any) -> None:
    server = server_factory("--emulator", "--rules", str(EXAMPLES / "chat" / "rules.json"))
    out = _run([sys.executable, str(EXAMPLES / "chat" / "chat.py"), f"{server.url}?ns={fresh_ns('chat')}"], server)
    assert "[bob's screen] alice: Hi Bob!" in out and "[alice's screen] bob: See you!" in out
    assert "refused: PERMISSION_DENIED" in out and "4 messages in the room" in out


def test_presence_example(server: Any) -> None:
    out = _run(
        [sys.executable, str(EXAMPLES / "presence" / "presence.py"), f"{server.url}?ns={fresh_ns('presence')}"], server
    )
    assert "dashboard: phone is online" in out and "dashboard: phone is offline" in out


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_rest_and_sse_example(server: Any) -> None:
    out = _run(["sh", str(EXAMPLES / "rest_sse.sh"), server.url, fresh_ns("rest")], server)
    assert '{"name":"Ada","born":1815}' in out.replace(" ", "") or '"born":1815' in out
    assert "event: put" in out and '"live!"' in out


def test_quickstart_notebook() -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    old_env = os.environ.copy()
    os.environ.update(_env())
    try:
        client = nbclient.NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old_env)
    outputs = "".join(
        out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert "top three now: ['alan', 'grace', 'margaret']" in outputs
    assert "done" in outputs
