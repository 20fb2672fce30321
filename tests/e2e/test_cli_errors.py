"""Every user error of every `rtdb` subcommand is one line, `rtdb: error: …`, with a non-zero
exit and no traceback (the real `rtdb` entry point, as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RTDB = str(Path(sys.executable).with_name("rtdb"))


def run(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    # a serve that wrongly starts would run until the timeout: the test then fails on TimeoutExpired
    result = subprocess.run([RTDB, *args], input=stdin, capture_output=True, timeout=60, check=False, cwd=cwd)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(),
                                       result.stderr.decode(errors="replace"))


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtdb: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "bad.json").write_text('{"a": ')
    (tmp_path / "badkey.json").write_text('{"a.b": 1}')
    (tmp_path / "ok.json").write_text('{"a": 1}')
    (tmp_path / "rules.json").write_text('{"rules": {".read": true}}')
    return tmp_path


@pytest.mark.parametrize(("args", "fragments"), [
    (["serve", "--port", "abc"], ["--port", "abc"]),
    (["serve", "--port", "70000"], ["--port", "70000"]),
    (["serve", "--log-level", "verbose"], ["--log-level", "verbose"]),
    (["serve", "--synchronous", "fast"], ["--synchronous", "fast"]),
    (["serve", "--index", "scores"], ["--index", "scores"]),
    (["serve", "--index", "scores:a.b"], ["--index", "scores:a.b"]),
    (["serve", "--index", "sc#ores:score"], ["--index"]),
    (["serve", "--workers", "-1"], ["--workers"]),
    (["serve", "--namespace", "no.dots"], ["--namespace"]),
    (["serve", "--no-such-flag"], ["--no-such-flag"]),
    (["import", "missing.json"], ["missing.json"]),
    (["import", "bad.json"], ["bad.json", "JSON"]),
    (["import", "badkey.json"], ["badkey.json"]),
    (["import", "ok.json", "--namespace", "no.dots"], ["namespace"]),
    (["import", "ok.json", "--path", "/a[0]"], ["--path"]),
    (["export", "--namespace", "no.dots"], ["namespace"]),
    (["export", "--path", "/a#b"], ["--path"]),
    (["import"], ["file"]),
    (["frobnicate"], ["frobnicate"]),
    ([], ["command"]),
    (["rules", "check", "missing.rules.json"], ["missing.rules.json"]),
    (["rules", "simulate", "rules.json", "write", "/a"], ["VALUE"]),
])
def test_a_user_error_is_one_line_and_a_failure(files: Path, args: list[str], fragments: list[str]) -> None:
    (files / "data").mkdir(exist_ok=True)
    store = ["--data-dir", str(files / "data")] if args and args[0] in ("serve", "import", "export") else []
    if args and args[0] == "serve":
        store += ["--port", "0"] if "--port" not in args else []
    assert_one_line_error(run(*args, *store, cwd=files), *fragments)


def test_environment_settings_are_checked_like_flags(tmp_path: Path) -> None:
    result = subprocess.run([RTDB, "serve", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=60, check=False, env={"RTDB_PORT": "nine"})
    assert_one_line_error(subprocess.CompletedProcess(result.args, result.returncode, "", result.stderr), "--port")


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"rtdb {version('rtdb')}"


def test_export_into_a_closed_pipe_is_one_line_and_a_failure(tmp_path: Path) -> None:
    source = tmp_path / "big.json"
    source.write_text(json.dumps({f"k{i}": "x" * 100 for i in range(5000)}))  # far more than a pipe holds
    data = str(tmp_path / "data")
    assert run("import", str(source), "--data-dir", data, cwd=tmp_path).returncode == 0
    proc = subprocess.Popen([RTDB, "export", "--data-dir", data], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10)  # like `| head -c 10`: read a little, then go away
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) != 0
    assert "Traceback" not in stderr
    assert_one_line_error(subprocess.CompletedProcess([], proc.returncode, "", stderr), "broken pipe")
