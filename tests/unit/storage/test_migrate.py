"""Files written by the previous row layout (format 1: one row per node keyed by its full
path) are rewritten in place to the current one.

``data/format1.sqlite`` was written by the format-1 code (commit ecaffc7): the value of
``data/format1.json`` plus the ``big`` and ``wide`` children built by :func:`expected`, an
index on ``users/$u/age``, the rules in ``meta`` and the commit sequence 41."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from rtdb.core.query import QuerySpec
from rtdb.core.value import normalize, to_plain
from rtdb.storage import migrate
from rtdb.storage.rows import FORMAT, PACKED_KINDS, PAGE_SIZE
from rtdb.storage.sqlite import SqliteStore

DATA = Path(__file__).parent / "data"
OLD_ROWS = 2_342  # one per node in format 1


def expected() -> object:
    value = json.loads((DATA / "format1.json").read_text())
    value["big"] = {
        f"item{i:04d}": {"text": "lorem ipsum " * (i % 7 + 1), "n": i, "ok": i % 2 == 0} for i in range(400)
    }
    value["wide"] = {f"k{i}": i for i in range(700)}
    return normalize(value)


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    file = tmp_path / "demo.sqlite"
    shutil.copy(DATA / "format1.sqlite", file)
    return file


async def test_a_format_1_file_opens_with_every_value_priority_index_and_seq(old_file: Path) -> None:
    store = SqliteStore(old_file)
    await store.open()
    try:
        assert await store.read(lambda t: t.node(())) == expected()
        assert await store.read(lambda t: t.node((), plain=True)) == to_plain(expected())
        assert await store.read(lambda t: t.committed_seq()) == 41
        assert await store.read(lambda t: t.meta("rules")) == '{"rules": {".read": true}}'
        spec = QuerySpec(order_by="child", child=("age",), limit=2)
        index = await store.read(lambda t: t.find_index(("users",), spec))
        assert index is not None
        assert await store.read(lambda t: t.query_keys(("users",), spec, index)) == [
            "-Nalpha000000000000c", "-Nalpha000000000000a"
        ]
        await store.write(lambda t: t.set(("users", "-Nalpha000000000000a", "age"), 37))
        assert await store.read(lambda t: t.node(("users", "-Nalpha000000000000a", "age"))) == 37
    finally:
        await store.close()
    with sqlite3.connect(old_file) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == FORMAT
        assert "path" not in {r[1] for r in conn.execute("PRAGMA table_info(nodes)")}
        kinds = [k for (k,) in conn.execute("SELECT kind FROM nodes")]
    assert sum(k in PACKED_KINDS for k in kinds) >= 400  # the small subtrees were packed
    assert len(kinds) < OLD_ROWS / 2  # format 1 had a row for each node; leaves of "wide" keep one each


def test_migrate_dir_rewrites_each_old_file_once(old_file: Path) -> None:
    seen: list[tuple[str, int]] = []
    assert migrate.migrate_dir(old_file.parent, lambda name, n: seen.append((name, n))) == ["demo"]
    assert migrate.migrate_dir(old_file.parent) == []
    with sqlite3.connect(old_file) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert old_file.stat().st_size < (DATA / "format1.sqlite").stat().st_size


def test_a_failed_migration_leaves_the_old_file_as_it_was(old_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(migrate.Packer, "close", fail)
    conn = sqlite3.connect(old_file, isolation_level=None)
    with pytest.raises(RuntimeError):
        migrate.ensure_current(conn, "demo")
    assert migrate.file_format(conn) == 1
    assert conn.execute("SELECT count(*) FROM nodes").fetchone()[0] == OLD_ROWS
    conn.close()
    monkeypatch.undo()
    assert migrate.migrate_dir(old_file.parent) == ["demo"]


def test_a_new_file_is_marked_current_and_an_unknown_format_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "new.sqlite", isolation_level=None)
    assert migrate.ensure_current(conn) is False
    assert migrate.file_format(conn) == FORMAT
    conn.execute("PRAGMA user_version = 99")
    with pytest.raises(ValueError, match="unknown format 99"):
        migrate.ensure_current(conn, "new")
    conn.close()
