"""A document written piece by piece leaves exactly what ``txn.set`` of its whole node leaves:
the same rows, the same index entries, server values resolved against the value replaced
(real SQLite files in tmp_path, small thresholds so that every object streams)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any

import msgspec
import pytest
from unit.storage.test_store import backend  # noqa: F401 (the fixture: every backend)

from rtdb.core.document import check_json, count_leaves
from rtdb.core.errors import InvalidData
from rtdb.core.path import Path
from rtdb.core.servervalue import resolve
from rtdb.core.value import normalize
from rtdb.storage.store import Backend
from rtdb.storage.stream import write_document
from rtdb.storage.txn import SCHEMA, Txn

NOW = 1_700_000_000_000
INDEXES = [
    (("rooms", "$r", "messages"), ("ts",)),
    (("rooms", "$r", "messages"), (".value",)),
    (("users",), ("profile", "age")),
    ((), ("n",)),
    (("a",), ("y",)),
]


def chat(rooms: int = 3, messages: int = 12, users: int = 8) -> dict[str, Any]:
    return {
        "users": {f"u{i:03d}": {"profile": {"name": f"User {i}", "age": 20 + i % 7, "bio": "words " * (i % 5)},
                                "tags": ["a", "b", None, "d"][: i % 4 + 1], ".priority": i if i % 3 else None}
                  for i in range(users)},
        "rooms": {f"r{r}": {"meta": {"title": f"Room {r}", ".priority": "p"},
                            "messages": {f"m{m:03d}": {"ts": (m * 7) % 11, "text": "hello " * (m % 9), "gone": None}
                                         for m in range(messages)}}
                  for r in range(rooms)},
        "n": 3,
        "a": {"y": {"z": 1}, "w": [1, 2, 3]},
        "counter": {".sv": {"increment": 5}},
        "at": {".sv": "timestamp"},
        "nothing": {"x": None, "y": {}},
    }


OLD = {"rooms": {"r1": {"messages": {"m003": {"ts": 100}}}}, "counter": 10, "keep": {"me": 1}}


@pytest.fixture
def databases(tmp_path: FsPath) -> Iterator[tuple[Txn, Txn]]:
    made = []
    for name in ("whole", "streamed"):
        conn = sqlite3.connect(tmp_path / f"{name}.sqlite", isolation_level=None)
        conn.executescript(SCHEMA)
        made.append(Txn(conn, writing=True))
    yield made[0], made[1]
    for txn in made:
        txn.conn.close()  # type: ignore[attr-defined]


def begin(txn: Txn) -> None:
    txn.conn.execute("BEGIN")
    txn.refresh_if_shared_changed()


def prepare(txn: Txn, before: list[tuple[Path, Any]], indexes: list[tuple[Path, Path]]) -> None:
    begin(txn)
    for pattern, child in indexes:
        txn.declare_index(pattern, child)
    for path, value in before:
        txn.set(path, normalize(value, path))
    txn.conn.execute("COMMIT")


def contents(txn: Txn) -> tuple[list[Any], list[Any]]:
    nodes = "SELECT parent, ksort, kind, value, priority FROM nodes ORDER BY parent, ksort"
    entries = "SELECT ix, parent, key, vsort, ksort FROM index_entries ORDER BY ix, parent, key"
    return txn.conn.execute(nodes).fetchall(), txn.conn.execute(entries).fetchall()


def both_ways(databases: tuple[Txn, Txn], base: Path, document: Any, small: int,
              before: list[tuple[Path, Any]] | None = None, indexes: list[tuple[Path, Path]] = INDEXES) -> Any:
    whole, streamed = databases
    text = document if isinstance(document, bytes) else json.dumps(document).encode()
    for txn in databases:
        prepare(txn, before or [], indexes)
    begin(whole)
    node = resolve(normalize(msgspec.json.decode(text), base), base, NOW, whole.node)  # what `rtdb import` did
    whole.set(base, node)
    whole.conn.execute("COMMIT")
    begin(streamed)
    leaves = write_document(streamed, base, check_json(text), NOW, small=small)
    streamed.conn.execute("COMMIT")
    assert contents(streamed) == contents(whole)
    assert leaves == count_leaves(node)
    return node


BEFORE: dict[str, list[tuple[Path, Any]]] = {
    "empty": [],
    "old data": [((), OLD)],
    "a leaf with a priority above": [(("a",), {".value": 1, ".priority": 5}), (("b",), 2)],
    "a packed row above": [(("a",), {"x": 1, "y": {"z": 2}, "v": [1, 2]})],
    "a large object above": [(("a",), {f"k{i}": "v" * 50 for i in range(60)})],
}
BASES = [(), ("rooms",), ("a", "y"), ("a", "y", "deep", "er"), ("rooms", "r1", "messages", "m003")]


@pytest.mark.parametrize("before", sorted(BEFORE))
@pytest.mark.parametrize("base", BASES, ids="/".join)
@pytest.mark.parametrize("small", [1, 400, 10**9])
def test_a_streamed_document_leaves_the_rows_and_entries_of_a_whole_set(
        databases: tuple[Txn, Txn], before: str, base: Path, small: int) -> None:
    both_ways(databases, base, chat(), small, BEFORE[before])


def test_increments_add_to_the_value_they_replace(databases: tuple[Txn, Txn]) -> None:
    node = both_ways(databases, (), chat(), 1, BEFORE["old data"])
    assert node["counter"] == 15 and node["at"] == NOW
    node = both_ways(databases, ("rooms",), {"r1": {"messages": {"m003": {"ts": {".sv": {"increment": 1}}}}},
                                             "pad": ["x" * 30] * 20}, 1, BEFORE["old data"])
    assert node["r1"]["messages"]["m003"]["ts"] == 101


def test_escaped_server_value_keys_still_find_the_old_values(databases: tuple[Txn, Txn]) -> None:
    text = b'{"counter": {"\\u002esv": {"increment": 1}}, "pad": "' + b"x" * 300 + b'"}'
    assert both_ways(databases, (), text, 1, BEFORE["old data"])["counter"] == 11


@pytest.mark.parametrize("base", [(), ("a", "b")], ids="/".join)
@pytest.mark.parametrize(("name", "document"), [
    ("vanishes", {"x": None, "y": {"z": {}}, "pad": [None] * 200}),
    ("stays small", {"x": 1, "pad": [None] * 200, "y": {"z": [None, 2]}}),
    ("one large leaf", {".value": "v" * 3000, ".priority": 2}),
    ("a large placeholder", {".sv": "timestamp"}),
    ("a large array", [{"i": i, "s": "text " * 5} for i in range(80)]),
])
def test_a_large_document_that_turns_out_small_is_set_whole(databases: tuple[Txn, Txn], base: Path, name: str,
                                                           document: Any) -> None:
    text = json.dumps(document, indent=1 if name == "a large placeholder" else None).encode()
    if name == "a large placeholder":
        text = text.replace(b"\n", b"\n" + b" " * 500)
    both_ways(databases, base, text, 1, BEFORE["old data"] + [(("a", "b"), {"old": True})])


def test_a_refused_document_raises_inside_the_transaction_before_any_commit(databases: tuple[Txn, Txn]) -> None:
    _, txn = databases
    prepare(txn, [((), OLD)], INDEXES)
    before = contents(txn)
    document = chat()
    document["zz"] = {"late": {"bad.key": 1}}
    begin(txn)
    with pytest.raises(InvalidData, match="parse key"):
        write_document(txn, (), check_json(json.dumps(document).encode()), NOW, small=1)
    assert txn.conn.execute("SELECT count(*) FROM nodes").fetchone()[0] > 0  # rows were written …
    txn.conn.execute("ROLLBACK")
    assert contents(txn) == before  # … and the transaction's rollback takes them back


def test_progress_reports_the_bytes_and_leaves_done(databases: tuple[Txn, Txn]) -> None:
    _, txn = databases
    text = json.dumps(chat(rooms=4, messages=50)).encode()
    seen: list[tuple[int, int]] = []
    begin(txn)
    leaves = write_document(txn, (), check_json(text), NOW, small=2000, progress=lambda *done: seen.append(done))
    txn.conn.execute("COMMIT")
    assert len(seen) > 5 and seen == sorted(seen) and seen[-1][1] == leaves
    assert seen[-1][0] > len(text) / 2


async def test_every_backend_stores_a_streamed_document_as_a_whole_one(backend: Backend) -> None:  # noqa: F811
    stores = [backend.store("whole"), backend.store("streamed")]
    for s in stores:
        await s.open()
    try:
        def prepare(txn: Any) -> None:
            for pattern, child in INDEXES:
                txn.declare_index(pattern, child)
            txn.set((), normalize(OLD))

        for s in stores:
            await s.write(prepare)
        document = chat()
        text = json.dumps(document).encode()
        await stores[0].write(lambda txn: txn.set((), resolve(normalize(document), (), NOW, txn.node)))
        await stores[1].write(lambda txn: write_document(txn, (), check_json(text), NOW, small=1))

        def seen(txn: Any) -> Any:
            """The tree and the index entries (an index named by what it indexes: ids differ between namespaces)."""
            names = {ix.id: (ix.pattern, ix.child) for ix in txn.indexes}
            entries = txn.conn.execute("SELECT ix, parent, key, vsort, ksort FROM index_entries")
            return txn.node(()), sorted((names[ix], *(bytes(c) if isinstance(c, memoryview) else c for c in rest))
                                        for ix, *rest in entries)

        assert await stores[1].read(seen) == await stores[0].read(seen)
    finally:
        for s in stores:
            await s.close()
