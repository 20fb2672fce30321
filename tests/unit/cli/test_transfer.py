"""`rtdb import` of files larger than one decoded piece (in process): what it writes, what it
reports, and that a file refused late — after rows were written — changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rtdb.core.document import SMALL
from rtdb.core.value import normalize, to_plain
from rtdb.server.settings import Settings
from rtdb_cli.errors import CliError
from rtdb_cli.transfer import run_export, run_import

EXISTING = {"keep": {"me": "please"}}


def large(tail: str = "") -> str:
    """A document of about 3 × SMALL: users, an array, priorities; ``tail`` is the JSON of a last member."""
    users = {f"u{i:05d}": {"name": f"User {i}", "age": i % 90, "tags": ["x", None, "z"], ".priority": i}
             for i in range(SMALL * 3 // 70)}
    text = json.dumps({"users": users, "list": list(range(100)), ".priority": "top", "n": None})
    assert len(text) > 2 * SMALL
    return text[:-1] + (", " + tail if tail else "") + "}"


def settings(data: Path, namespace: str = "n") -> Settings:
    return Settings(data_dir=data, namespace=namespace)


def export(data: Path, capsys: pytest.CaptureFixture[str], namespace: str = "n", fmt: str = "export") -> Any:
    capsys.readouterr()
    run_export(settings(data, namespace), "/", fmt)
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    d = tmp_path / "data"
    (tmp_path / "existing.json").write_text(json.dumps(EXISTING))
    run_import(settings(d), str(tmp_path / "existing.json"), "/t")
    return d


def test_a_large_file_is_imported_whole_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = large()
    (tmp_path / "big.json").write_text(text)
    assert run_import(settings(tmp_path / "d"), str(tmp_path / "big.json"), "/at/here") == 0
    node = normalize(json.loads(text), ("at", "here"))
    users = len(node["users"])
    assert f"imported {users * 4 + 100:,} leaves into /at/here" in capsys.readouterr().err
    assert export(tmp_path / "d", capsys) == {"at": {"here": node}}
    assert export(tmp_path / "d", capsys, fmt="plain") == {"at": {"here": to_plain(node)}}


@pytest.mark.parametrize(("tail", "message"), [
    ('"late": {"bad.key": 1}', "nothing imported"),
    ('"late": {"a": {"b": 1e999}}', "is not valid JSON (Number out of range"),
    ('"late": "\\ud800"', "is not valid JSON"),
    ('"late": [1, 2}', "is not valid JSON"),
])
def test_a_file_refused_late_leaves_the_existing_data_as_it_was(tmp_path: Path, data: Path, tail: str, message: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text(large(tail))
    for at in ("/t", "/"):
        with pytest.raises(CliError, match="bad.json") as refused:
            run_import(settings(data), str(tmp_path / "bad.json"), at)
        assert message in refused.value.message and refused.value.message.endswith("nothing imported")
        assert export(data, capsys) == {"t": EXISTING}


def test_a_file_refused_late_creates_no_namespace_and_no_data_dir(tmp_path: Path, data: Path) -> None:
    (tmp_path / "bad.json").write_text(large('"late": {"bad#key": 1}'))
    files = sorted(p.name for p in data.iterdir())
    with pytest.raises(CliError, match="nothing imported"):
        run_import(settings(data, "other"), str(tmp_path / "bad.json"), "/")
    assert sorted(p.name for p in data.iterdir()) == files
    with pytest.raises(CliError, match="nothing imported"):
        run_import(settings(tmp_path / "new" / "data"), str(tmp_path / "bad.json"), "/")
    assert not (tmp_path / "new" / "data").exists()
