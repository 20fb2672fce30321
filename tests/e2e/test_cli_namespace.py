"""`rtdb namespace drop|compact NAME --data-dir DIR`: offline, and refused beside a running
server (which is told the URL to ask instead)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

RTDB = str(Path(sys.executable).with_name("rtdb"))
BIG = {f"k{i:05d}": "x" * 400 for i in range(8_000)}


def rtdb(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RTDB, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def imported(tmp_path: Path, ns: str, value: Any) -> Path:
    data = tmp_path / "data"
    source = tmp_path / f"{ns}.json"
    source.write_text(json.dumps(value))
    result = rtdb("import", source, "--data-dir", data, "--namespace", ns)
    assert result.returncode == 0, result.stderr
    return data


def on_disk(data: Path, ns: str) -> int:
    return sum(p.stat().st_size for p in data.iterdir() if p.name.startswith(ns + ".sqlite"))


def test_drop_deletes_the_namespace_files(tmp_path: Path) -> None:
    data = imported(tmp_path, "old", {"a": 1})
    imported(tmp_path, "other", {"b": 2})
    result = rtdb("namespace", "drop", "old", "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dropped namespace old: ")
    assert not [p for p in data.iterdir() if p.name.startswith("old.sqlite")]
    export = rtdb("export", "--data-dir", data, "--namespace", "other")
    assert json.loads(export.stdout) == {"b": 2}
    again = rtdb("namespace", "drop", "old", "--data-dir", data)
    assert again.returncode == 1
    assert again.stderr == f"rtdb: error: namespace old does not exist in {data}: nothing dropped\n"


def test_compact_gives_back_the_space_of_deleted_data(tmp_path: Path) -> None:
    data = imported(tmp_path, "big", {"items": BIG, "keep": 1})
    source = tmp_path / "small.json"
    source.write_text("null")
    assert rtdb("import", source, "--data-dir", data, "--namespace", "big", "--path", "/items").returncode == 0
    before = on_disk(data, "big")
    result = rtdb("namespace", "compact", "big", "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("compacted namespace big (free pages given back): ")
    assert on_disk(data, "big") < before / 10
    assert json.loads(rtdb("export", "--data-dir", data, "--namespace", "big").stdout) == {"keep": 1}


def test_compact_rewrites_a_file_written_without_auto_vacuum(tmp_path: Path) -> None:
    data = imported(tmp_path, "legacy", {"items": BIG, "keep": 1})
    file = data / "legacy.sqlite"
    conn = sqlite3.connect(file, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum=NONE")
    conn.execute("VACUUM")  # as files were before incremental auto-vacuum
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    source = tmp_path / "small.json"
    source.write_text("null")
    assert rtdb("import", source, "--data-dir", data, "--namespace", "legacy", "--path", "/items").returncode == 0
    before = on_disk(data, "legacy")
    result = rtdb("namespace", "compact", "legacy", "--data-dir", data)
    assert result.returncode == 0, result.stderr
    assert "(rewritten)" in result.stdout
    assert on_disk(data, "legacy") < before / 10
    conn = sqlite3.connect(file)
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    conn.close()


@pytest.mark.parametrize(("action", "curl"), [
    ("drop", "curl -X DELETE '{url}/.namespace.json?ns=busy'"),
    ("compact", "curl -X POST '{url}/.compact.json?ns=busy'"),
])
def test_refused_beside_a_running_server(server: Any, action: str, curl: str) -> None:
    httpx.put(f"{server.url}/a.json?ns=busy", json=1).raise_for_status()
    result = rtdb("namespace", action, "busy", "--data-dir", server.data_dir)
    assert result.returncode != 0
    nothing = "nothing dropped" if action == "drop" else "nothing compacted"
    assert result.stderr.startswith(f"rtdb: error: data dir {server.data_dir} is in use by rtdb serve")
    assert nothing in result.stderr and curl.format(url=server.url) in result.stderr
    assert result.stderr.count("\n") == 1
    assert httpx.get(f"{server.url}/a.json?ns=busy").json() == 1


@pytest.mark.parametrize("args", [
    ["namespace", "drop", "no/such"],
    ["namespace", "drop", "x", "--data-dir", "/nonexistent/data"],
    ["namespace", "compact"],
    ["namespace", "shrink", "x"],
])
def test_bad_input_is_one_error_line(args: list[str]) -> None:
    result = rtdb(*args)
    assert result.returncode != 0
    assert result.stderr.startswith("rtdb: error: ") and result.stderr.count("\n") == 1, result.stderr
