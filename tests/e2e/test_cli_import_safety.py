"""`rtdb import` never loses data: the file is read, parsed and validated before anything is
replaced, and the replacement is one transaction. It reports the right count and shows
progress on standard error even when that is not a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

RTDB = str(Path(sys.executable).with_name("rtdb"))
EXISTING = {"keep": {"me": "please", "n": 1}}


def rtdb(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([RTDB, *args], input=stdin, capture_output=True, timeout=120, check=False)


def export(data: Path, at: str = "/") -> Any:
    result = rtdb("export", "--data-dir", str(data), "--namespace", "n", "--path", at)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    source = tmp_path / "existing.json"
    source.write_text(json.dumps(EXISTING))
    assert rtdb("import", str(source), "--data-dir", str(d), "--namespace", "n", "--path", "/t").returncode == 0
    return d


def bad_key_late() -> str:
    """A document whose invalid key comes after more leaves than one batch of the old import."""
    good = {f"k{i:05d}": i for i in range(12_000)}
    return json.dumps({"good": good, "zz": {"bad.key": 1}})


@pytest.mark.parametrize(("name", "content"), [
    ("missing", None),
    ("empty", ""),
    ("blank", "  \n"),
    ("truncated", '{"a": {"b": 1'),
    ("not-json", "hello"),
    ("bad-key", '{"a": {"b#c": 1}}'),
    ("bad-key-late", bad_key_late()),
    ("too-deep", "{\"a\":" * 40 + "1" + "}" * 40),
])
def test_a_bad_file_leaves_the_existing_data_untouched(tmp_path: Path, data: Path, name: str,
                                                       content: str | None) -> None:
    source = tmp_path / f"{name}.json"
    if content is not None:
        source.write_text(content)
    for at in ("/t", "/"):
        result = rtdb("import", str(source), "--data-dir", str(data), "--namespace", "n", "--path", at)
        assert result.returncode != 0
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rtdb: error: ") and "nothing imported" in lines[0]
        assert export(data) == {"t": EXISTING}


def test_a_bad_standard_input_leaves_the_existing_data_untouched(data: Path) -> None:
    for stdin in (b"", b'{"a": [1, 2', b'{"$x": 1}'):
        result = rtdb("import", "-", "--data-dir", str(data), "--namespace", "n", "--path", "/t", stdin=stdin)
        assert result.returncode != 0
        assert export(data) == {"t": EXISTING}


@pytest.mark.parametrize(("document", "count"), [
    (b"42", "1 leaf"),
    (b'"text"', "1 leaf"),
    (b'{"a": 1, "b": {"c": true, "d": null}, "e": [1, 2]}', "4 leaves"),
    (b'{"a": {".value": 1, ".priority": 2}, ".priority": 3}', "1 leaf"),
])
def test_import_reports_the_leaves_it_wrote(tmp_path: Path, document: bytes, count: str) -> None:
    result = rtdb("import", "-", "--data-dir", str(tmp_path / "d"), stdin=document)
    assert result.returncode == 0, result.stderr
    assert f"imported {count} into /" in result.stderr.decode()


def test_import_prints_progress_lines_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """Standard input arrives in two parts: while import waits for the second, it must say where it is."""
    proc = subprocess.Popen([RTDB, "import", "-", "--data-dir", str(tmp_path / "d"), "--progress-every", "0.1"],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(b'{"first": "part", ')
    proc.stdin.flush()
    seen: list[bytes] = []
    got_line = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            got_line.set()

    reader = threading.Thread(target=read_stderr)
    reader.start()
    try:
        assert got_line.wait(timeout=30), "no progress line while the input was still arriving"
        assert seen[0].startswith(b"rtdb import: reading standard input")
    finally:
        proc.stdin.write(b'"second": "part"}')
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        reader.join()
        proc.stderr.close()
    assert b"imported 2 leaves" in seen[-1]
    assert export_plain(tmp_path / "d") == {"first": "part", "second": "part"}


def export_plain(data: Path) -> Any:
    result = rtdb("export", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_keeps_priorities_and_resolves_server_values(tmp_path: Path) -> None:
    doc = b'{"a": {".value": "x", ".priority": 1}, "at": {".sv": "timestamp"}, ".priority": "p"}'
    assert rtdb("import", "-", "--data-dir", str(tmp_path / "d"), "--path", "/w", stdin=doc).returncode == 0
    out = json.loads(rtdb("export", "--data-dir", str(tmp_path / "d"), "--path", "/w", "--format", "export").stdout)
    assert out["a"] == {".value": "x", ".priority": 1} and out[".priority"] == "p"
    assert isinstance(out["at"], int) and out["at"] > 1_700_000_000_000
