"""`rtdb serve` and its data directory: it refuses one it cannot write or that another server
holds (with `--workers` and `--write-process` too), `/healthz` fails when storage does, a
rules-file error at start names the file, and `rtdb import` refuses a data dir a server holds."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

RTDB = str(Path(sys.executable).with_name("rtdb"))


def refused(*args: str) -> str:
    """Run a `rtdb serve` that must refuse to start; its one error line. (One that starts by mistake
    runs until the timeout, and the test fails.)"""
    result = subprocess.run([RTDB, "serve", "--port", "0", *args], capture_output=True, timeout=60, check=False)
    assert result.returncode != 0
    last = result.stderr.decode().splitlines()[-1]
    assert last.startswith("rtdb: error: "), result.stderr
    assert b"Traceback" not in result.stderr
    return last


def test_serve_refuses_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a directory")
    assert "not a directory" in refused("--data-dir", str(target))


def test_serve_refuses_a_data_dir_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert "cannot create" in refused("--data-dir", str(tmp_path / "file" / "below"))


def test_serve_refuses_a_directory_it_cannot_write() -> None:
    if Path("/proc").stat().st_dev == 0 or not Path("/proc/self").exists():  # pragma: no cover
        pytest.skip("no /proc")
    assert "not a writable directory" in refused("--data-dir", "/proc")  # no one may create files in /proc


@pytest.mark.parametrize("mode", [[], ["--workers", "2"], ["--write-process"]])
def test_a_second_server_on_the_same_data_dir_is_refused(
    tmp_path: Path, server_factory: Callable[..., Any], mode: list[str]
) -> None:
    data = tmp_path / "shared"
    first = server_factory("--emulator", *mode, data_dir=data)
    line = refused("--emulator", "--data-dir", str(data))
    assert "in use by rtdb serve on" in line and f":{first.port}" in line
    assert httpx.get(first.url + "/healthz").status_code == 200  # the first one goes on


def test_a_killed_server_leaves_no_lock_behind(tmp_path: Path, server_factory: Callable[..., Any]) -> None:
    data = tmp_path / "shared"
    first = server_factory("--emulator", "--workers", "2", data_dir=data)
    first.kill()  # SIGKILL of the supervisor: no shutdown code runs
    second = server_factory("--emulator", data_dir=data)
    assert httpx.get(second.url + "/healthz").json()["status"] == "ok"


def test_healthz_fails_when_the_data_dir_cannot_be_written(tmp_path: Path,
                                                           server_factory: Callable[..., Any]) -> None:
    data = tmp_path / "data"
    server = server_factory("--emulator", data_dir=data)
    assert httpx.get(server.url + "/healthz").status_code == 200
    data.rename(tmp_path / "moved")  # the server's files go with it; nothing can be created at its path
    try:
        reply = httpx.get(server.url + "/healthz")
        assert reply.status_code == 503
        assert reply.json()["status"] == "error" and "storage" in reply.json()["error"]
    finally:
        (tmp_path / "moved").rename(data)
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_rules_file_error_at_start_names_the_file(tmp_path: Path) -> None:
    rules = tmp_path / "app.rules.json"
    rules.write_text('{"rules": {\n  ".read": "nope == 1"\n}}')
    line = refused("--data-dir", str(tmp_path / "data"), "--rules", str(rules))
    assert str(rules) in line and "2:13" in line and "nope" in line
    missing = tmp_path / "missing.rules.json"
    assert str(missing) in refused("--data-dir", str(tmp_path / "data"), "--rules", str(missing))
    line = refused("--data-dir", str(tmp_path / "data"), "--rules", str(rules), "--workers", "2")
    assert str(rules) in line


def test_import_refuses_a_data_dir_a_server_holds(tmp_path: Path, server_factory: Callable[..., Any]) -> None:
    data = tmp_path / "data"
    server = server_factory("--emulator", data_dir=data)
    with httpx.Client(base_url=server.url) as http:
        assert http.put("/a.json", params={"ns": "n"}, content=b'{"old": 1}').status_code == 200
        source = tmp_path / "new.json"
        source.write_text(json.dumps({"new": 2}))
        result = subprocess.run([RTDB, "import", str(source), "--data-dir", str(data), "--namespace", "n",
                                 "--path", "/a"], capture_output=True, timeout=60, check=False)
        assert result.returncode != 0
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("rtdb: error: ")
        assert server.url in lines[0] and f"{server.url}/a.json?ns=n" in lines[0]
        assert http.get("/a.json", params={"ns": "n"}).json() == {"old": 1}
    server.stop()  # once it is gone, the import goes ahead
    assert subprocess.run([RTDB, "import", str(source), "--data-dir", str(data), "--namespace", "n", "--path",
                           "/a"], capture_output=True, timeout=60, check=False).returncode == 0


def test_export_reads_beside_a_running_server(tmp_path: Path, server_factory: Callable[..., Any]) -> None:
    data = tmp_path / "data"
    server = server_factory("--emulator", data_dir=data)
    assert httpx.put(server.url + "/a.json", params={"ns": "n"}, content=b'{"x": 1}').status_code == 200
    result = subprocess.run([RTDB, "export", "--data-dir", str(data), "--namespace", "n"], capture_output=True,
                            timeout=60, check=True)
    assert json.loads(result.stdout) == {"a": {"x": 1}}
