"""`rtdb import` and `rtdb export` as subprocesses over a data directory, and a
real `rtdb serve` reading what they wrote."""

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

DOCUMENT: dict[str, Any] = {
    "users": {
        "ada": {"name": "Ada Lovelace", "born": 1815, "admin": True, "langs": ["en", "fr"]},
        "ünï": {"name": "Zoë 日本語 😀", "score": -12.75, "verified": False, "quote": "tab\there \"quoted\" \\ /"},
    },
    "matrix": [[1, 2], [3, [4, 5]], {"k": "v"}],
    "sparse": [1, None, 3],
    "numbers": {"int": 42, "neg": -7, "big": 2**53, "tiny": 1.5e-7, "pi": 3.141592653589793, "zero": 0},
    "empty_string": "",
    "deep": {"a": {"b": {"c": {"d": {"e": {"f": "bottom"}}}}}},
}

WITH_PRIORITIES: dict[str, Any] = {
    "ranked": {
        "first": {".value": "gold", ".priority": 1},
        "second": {"medal": "silver", ".priority": 2.5},
        "third": {".value": 3, ".priority": "c"},
        "none": "plain",
    },
    ".priority": "top",
}


def rtdb(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run([RTDB, *args], input=stdin, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


def export(data_dir: Path, ns: str, at: str, fmt: str = "plain") -> Any:
    out = rtdb("export", "--path", at, "--data-dir", str(data_dir), "--namespace", ns, "--format", fmt)
    return json.loads(out.stdout)


def test_import_then_export_round_trips_a_json_document(tmp_path: Path) -> None:
    source = write_json(tmp_path / "doc.json", DOCUMENT)
    data = tmp_path / "data"
    rtdb("import", str(source), "--path", "/backups/today", "--data-dir", str(data), "--namespace", "books")
    assert export(data, "books", "/backups/today") == DOCUMENT
    assert export(data, "books", "/") == {"backups": {"today": DOCUMENT}}
    assert export(data, "books", "/backups/today/users/ünï/name") == "Zoë 日本語 😀"
    assert export(data, "books", "/backups/today/missing") is None


def test_export_writes_valid_utf8_json_text(tmp_path: Path) -> None:
    source = write_json(tmp_path / "doc.json", DOCUMENT)
    data = tmp_path / "data"
    rtdb("import", str(source), "--path", "/", "--data-dir", str(data), "--namespace", "n")
    out = rtdb("export", "--path", "/users", "--data-dir", str(data), "--namespace", "n").stdout
    assert json.loads(out.decode("utf-8")) == DOCUMENT["users"]


def test_import_reads_standard_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rtdb("import", "-", "--path", "/from/stdin", "--data-dir", str(data), "--namespace", "n",
         stdin=json.dumps(DOCUMENT).encode())
    assert export(data, "n", "/from/stdin") == DOCUMENT


def test_import_of_a_primitive_document_stores_a_leaf(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rtdb("import", str(write_json(tmp_path / "v.json", "just text")), "--path", "/leaf", "--data-dir", str(data),
         "--namespace", "n")
    assert export(data, "n", "/leaf") == "just text"
    assert export(data, "n", "/") == {"leaf": "just text"}


def test_import_replaces_the_target_path_and_leaves_siblings_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("--data-dir", str(data), "--namespace", "n")
    rtdb("import", str(write_json(tmp_path / "a.json", {"old": 1, "kept": 2})), "--path", "/a", *args)
    rtdb("import", str(write_json(tmp_path / "b.json", {"sibling": True})), "--path", "/b", *args)
    rtdb("import", str(write_json(tmp_path / "a2.json", {"new": 3})), "--path", "/a", *args)
    assert export(data, "n", "/") == {"a": {"new": 3}, "b": {"sibling": True}}


def test_namespaces_are_separate_for_import_and_export(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rtdb("import", str(write_json(tmp_path / "a.json", {"x": "A"})), "--path", "/", "--data-dir", str(data),
         "--namespace", "alpha")
    rtdb("import", str(write_json(tmp_path / "b.json", {"x": "B"})), "--path", "/", "--data-dir", str(data),
         "--namespace", "beta")
    assert export(data, "alpha", "/") == {"x": "A"}
    assert export(data, "beta", "/") == {"x": "B"}
    assert export(data, "gamma", "/") is None


def test_export_format_keeps_priorities_and_plain_format_drops_them(tmp_path: Path) -> None:
    source = write_json(tmp_path / "p.json", WITH_PRIORITIES)
    data = tmp_path / "data"
    rtdb("import", str(source), "--path", "/scores", "--data-dir", str(data), "--namespace", "n")
    assert export(data, "n", "/scores", "export") == WITH_PRIORITIES
    assert export(data, "n", "/scores/ranked/first", "export") == {".value": "gold", ".priority": 1}
    assert export(data, "n", "/scores") == {
        "ranked": {"first": "gold", "second": {"medal": "silver"}, "third": 3, "none": "plain"},
    }


def test_export_output_can_be_imported_again_unchanged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("--data-dir", str(data), "--namespace", "n")
    rtdb("import", str(write_json(tmp_path / "p.json", WITH_PRIORITIES)), "--path", "/one", *args)
    exported = rtdb("export", "--path", "/one", "--format", "export", *args).stdout
    (tmp_path / "again.json").write_bytes(exported)
    rtdb("import", str(tmp_path / "again.json"), "--path", "/two", *args)
    assert export(data, "n", "/two", "export") == export(data, "n", "/one", "export") == WITH_PRIORITIES


def test_imported_data_is_served_by_a_server_on_that_data_dir(
    tmp_path: Path, server_factory: Callable[..., Any]
) -> None:
    data = tmp_path / "served"
    rtdb("import", str(write_json(tmp_path / "doc.json", DOCUMENT)), "--path", "/imported", "--data-dir", str(data),
         "--namespace", "shop")
    rtdb("import", str(write_json(tmp_path / "p.json", WITH_PRIORITIES)), "--path", "/prio", "--data-dir",
         str(data), "--namespace", "shop")
    server = server_factory("--emulator", data_dir=data)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/imported.json", params={"ns": "shop"}).json() == DOCUMENT
        assert http.get("/imported/users/ada/langs/1.json", params={"ns": "shop"}).json() == "fr"
        assert http.get("/prio.json", params={"ns": "shop", "format": "export"}).json() == WITH_PRIORITIES
        ranked = http.get("/prio/ranked.json", params={"ns": "shop", "orderBy": '"$priority"', "startAt": "2"})
        assert ranked.json() == {"second": {"medal": "silver"}, "third": 3}
        assert http.get("/imported.json").json() is None  # another namespace
        # the server writes on top of the imported data
        assert http.patch("/imported/numbers.json", params={"ns": "shop"}, content=b'{"int": 43}').status_code == 200
    server.stop()
    assert export(data, "shop", "/imported/numbers") == {**DOCUMENT["numbers"], "int": 43}
