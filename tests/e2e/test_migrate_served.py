"""A data dir written by the previous storage format (format 1), served and migrated by the
real ``rtdb`` command: ``rtdb serve`` migrates it before it listens, ``rtdb migrate`` offline."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from rtdb.storage.rows import FORMAT

pytestmark = pytest.mark.e2e

RTDB = str(Path(sys.executable).with_name("rtdb"))
OWNER = {"Authorization": "Bearer owner"}  # the file holds rules that let nobody else write
OLD = Path(__file__).resolve().parents[1] / "unit" / "storage" / "data" / "format1.sqlite"


def _old_data_dir(tmp_path: Path, name: str = "demo") -> Path:
    data = tmp_path / "old"
    data.mkdir()
    shutil.copy(OLD, data / f"{name}.sqlite")
    return data


def _format(file: Path) -> int:
    with sqlite3.connect(file) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_migrates_an_old_data_dir_before_it_listens(tmp_path: Path, server_factory: Any, workers: str) -> None:
    data = _old_data_dir(tmp_path)
    server = server_factory("--emulator", "--workers", workers, data_dir=data)
    assert _format(data / "demo.sqlite") == FORMAT
    assert "migrated 1 namespace(s)" in server.log()
    with httpx.Client(base_url=server.url, params={"ns": "demo"}, headers=OWNER) as http:
        assert http.get("/users/-Nalpha000000000000b/name.json").json() == "Grace"
        assert http.get("/list.json").json() == ["zero", "one", {"two": 2}, None, "four"]
        assert http.get("/leaf.json", params={"format": "export"}).json() == {".value": 42, ".priority": 1.5}
        assert http.get("/users.json", params={"orderBy": '"age"', "limitToFirst": "1"}).json() == {
            "-Nalpha000000000000c": {"name": "Émile", "age": 7, "nested": {"deep": {"deeper": {"deepest": "x"}}}}
        }
        assert len(http.get("/big.json", params={"shallow": "true"}).json()) == 400
        assert http.put("/users/-Nalpha000000000000c/age.json", json=8).json() == 8
    server.restart()
    with httpx.Client(base_url=server.url, params={"ns": "demo"}, headers=OWNER) as http:
        assert http.get("/users/-Nalpha000000000000c/age.json").json() == 8


def test_rtdb_migrate_rewrites_old_files_once_and_refuses_beside_a_server(tmp_path: Path, server_factory: Any) -> None:
    data = _old_data_dir(tmp_path)
    first = subprocess.run([RTDB, "migrate", "--data-dir", str(data)], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"migrated 1 namespace(s) to storage format {FORMAT}: demo" in first.stderr + first.stdout
    assert _format(data / "demo.sqlite") == FORMAT
    again = subprocess.run([RTDB, "migrate", "--data-dir", str(data)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already" in again.stderr + again.stdout
    server_factory("--emulator", data_dir=data)
    busy = subprocess.run([RTDB, "migrate", "--data-dir", str(data)], capture_output=True, text=True, timeout=120)
    assert busy.returncode == 1
    assert busy.stderr.startswith("rtdb: error:") and "nothing migrated" in busy.stderr
