"""`rtdb rules check` reports every error of a file; `rtdb rules simulate` names the input that is
bad and simulates query reads (the real `rtdb` entry point, as a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RTDB = str(Path(sys.executable).with_name("rtdb"))

BROKEN = """{
  "rules": {
    ".read": "foo",
    "users": {"$uid": {".write": "auth.uid === $uid && bar"}},
    ".bogus": true
  }
}"""
QUERIES = ('{"rules": {"users": {".indexOn": "age", '
           '".read": "query.orderByChild == \'age\' && query.limitToFirst <= 10"}}}')


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RTDB, "rules", *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def test_check_reports_every_error_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text(BROKEN)
    result = run("check", "broken.json", cwd=tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("rtdb: error: ")]
    assert errors == [
        'rtdb: error: broken.json: /rules/.read: 3:15: Unknown variable "foo"',
        'rtdb: error: broken.json: /rules/users/$uid/.write: 4:56: Unknown variable "bar"',
        "rtdb: error: broken.json: /rules/.bogus: 5:5: Unknown rule type .bogus",
    ]
    assert "3 errors" in result.stderr


def test_check_of_a_valid_file_says_ok(tmp_path: Path) -> None:
    (tmp_path / "q.json").write_text(QUERIES)
    result = run("check", "q.json", cwd=tmp_path)
    assert result.returncode == 0 and "ok (1 indexes declared)" in result.stdout


@pytest.mark.parametrize(("args", "named"), [
    (["--auth", "{uid"], "--auth"),
    (["--auth", "[1]"], "--auth"),
    (["--data", "missing.json"], "--data missing.json"),
    (["--data", "notjson.json"], "--data notjson.json"),
    (["--data", "badkey.json"], "--data badkey.json"),
    (["--query", "orderByChild=age&limitToFirst=many"], "--query"),
])
def test_simulate_names_the_bad_input(tmp_path: Path, args: list[str], named: str) -> None:
    (tmp_path / "q.json").write_text(QUERIES)
    (tmp_path / "notjson.json").write_text("{nope")
    (tmp_path / "badkey.json").write_text('{"a/b": 1}')
    result = run("simulate", "q.json", *args, "read", "/users", cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert result.returncode != 0 and len(lines) == 1
    assert lines[0].startswith(f"rtdb: error: {named}"), lines


@pytest.mark.parametrize(("args", "named"), [
    (["write", "/users/a", "{oops"], "VALUE"),
    (["write", "/users/a", '{"a.b": 1}'], "VALUE"),
    (["update", "/users", "[1]"], "VALUE"),
    (["write", "/us#ers", "1"], "PATH"),
])
def test_simulate_names_a_bad_value_or_path(tmp_path: Path, args: list[str], named: str) -> None:
    (tmp_path / "q.json").write_text(QUERIES)
    result = run("simulate", "q.json", *args, cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith(f"rtdb: error: {named}"), lines


def test_simulate_names_a_bad_rules_file(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text(BROKEN)
    result = run("simulate", "broken.json", "read", "/", cwd=tmp_path)
    assert result.returncode != 0 and result.stderr.startswith("rtdb: error: rules file broken.json: ")


def test_simulate_decides_query_reads(tmp_path: Path) -> None:
    (tmp_path / "q.json").write_text(QUERIES)
    allowed = run("simulate", "q.json", "read", "/users", "--query", "orderByChild=age&limitToFirst=10", cwd=tmp_path)
    assert allowed.returncode == 0 and "ALLOWED" in allowed.stdout
    too_many = run("simulate", "q.json", "read", "/users", "--query", "orderByChild=age&limitToFirst=11",
                   cwd=tmp_path)
    assert too_many.returncode == 1 and "DENIED" in too_many.stdout
    plain = run("simulate", "q.json", "read", "/users", cwd=tmp_path)
    assert plain.returncode == 1 and "DENIED" in plain.stdout
    rest_style = run("simulate", "q.json", "read", "/users", "--query", 'orderBy="age"&limitToFirst=3', cwd=tmp_path)
    assert rest_style.returncode == 0
