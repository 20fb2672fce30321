"""The store protocol against every backend (BACKENDS below), with real files in tmp_path; the
row-layout and multi-process tests are the SQLite store's own."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rtdb.core.ordering import key_order
from rtdb.core.query import Bound, QuerySpec, parse_shallow
from rtdb.core.value import children, normalize
from rtdb.storage.rows import NUMBER, OBJECT, PACK_MAX, PACKED, SEP, STRING, child_path_key, key_bytes, key_of
from rtdb.storage.sqlite import SqliteStore
from rtdb.storage.sqlite_backend import SqliteBackend
from rtdb.storage.store import Backend, Store
from rtdb.storage.txn import Txn


@contextmanager
def sqlite_backend(data_dir: Path) -> Iterator[Backend]:
    yield SqliteBackend(data_dir, synchronous="NORMAL")


@contextmanager
def postgres_backend(data_dir: Path) -> Iterator[Backend]:
    """PostgreSQL in a schema of its own (pg_service: skips without a server, unless
    RTDB_REQUIRE_SERVICES is set)."""
    from unit.storage.pg_service import fresh_url

    from rtdb.storage.postgres import PostgresBackend

    with fresh_url() as url:
        backend = PostgresBackend(url)
        try:
            yield backend
        finally:
            backend.close()


# One fixture for every store implementation: these tests run against each backend in
# BACKENDS. It lives in this file, not in a conftest.py: the e2e tests import the top-level
# conftest by that module name.
BACKENDS: dict[str, Callable[[Path], AbstractContextManager[Backend]]] = {
    "sqlite": sqlite_backend,
    "postgres": postgres_backend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with BACKENDS[request.param](tmp_path) as made:
        yield made


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.store("ns")
    await s.open()
    yield s
    await s.close()


def rows(store: Store) -> list[tuple[str, int]]:
    """``(path, kind)`` of every stored row, paths with ``/``, in path order (SQLite's layout)."""
    if not isinstance(store, SqliteStore):
        pytest.skip("the row layout of the SQLite store")
    with sqlite3.connect(store.file) as conn:
        found = conn.execute("SELECT parent, ksort, kind FROM nodes").fetchall()
    return sorted((child_path_key(parent, key_of(ksort)).replace(SEP, "/") if ksort else "", kind)
                  for parent, ksort, kind in found)


async def test_set_then_read_round_trips_nested_values(store: Store) -> None:
    value = normalize({"a": {"b": 1, "c": [True, "x", 2.5]}, "d": {".value": "p", ".priority": 3}, ".priority": "r"})
    await store.write(lambda t: t.set(("root",), value))
    assert await store.read(lambda t: t.node(("root",))) == value
    assert await store.read(lambda t: t.node(("root", "a", "c", "0"))) is True
    assert await store.read(lambda t: t.node(())) == {"root": value}


async def test_a_small_subtree_is_one_row_and_a_large_one_a_row_per_child(store: Store) -> None:
    await store.write(lambda t: t.set(("a",), normalize({"b": {"c": 1, "d": 2}, "e": "x"})))
    assert rows(store) == [("", OBJECT), ("a", PACKED)]
    big = {f"k{i:04d}": {"text": "x" * 40, "n": i} for i in range(200)}
    await store.write(lambda t: t.set(("a",), normalize({**big, "e": "x"})))
    assert rows(store) == [("", OBJECT), ("a", OBJECT), ("a/e", STRING), *((f"a/k{i:04d}", PACKED) for i in range(200))]
    assert await store.read(lambda t: t.node(("a", "k0007"))) == {"text": "x" * 40, "n": 7}


async def test_a_packed_subtree_that_outgrows_its_row_is_unpacked(store: Store) -> None:
    await store.write(lambda t: t.set(("u",), {"name": "ada", "tags": {"a": True}}))
    await store.write(lambda t: t.set(("u", "bio"), "b" * (PACK_MAX + 10)))
    assert rows(store) == [("", OBJECT), ("u", OBJECT), ("u/bio", STRING), ("u/name", STRING), ("u/tags", PACKED)]
    await store.write(lambda t: t.set(("u", "tags", "b"), True))
    assert await store.read(lambda t: t.node(("u",))) == {
        "name": "ada", "tags": {"a": True, "b": True}, "bio": "b" * (PACK_MAX + 10)
    }


async def test_deleting_the_last_child_prunes_empty_ancestors(store: Store) -> None:
    await store.write(lambda t: t.set(("a", "b", "c"), 1))
    await store.write(lambda t: t.set(("x",), 1))
    await store.write(lambda t: t.set(("a", "b", "c"), None))
    assert rows(store) == [("", OBJECT), ("x", NUMBER)]
    assert await store.read(lambda t: t.node(("a",))) is None


async def test_writing_below_a_leaf_turns_it_into_an_object(store: Store) -> None:
    await store.write(lambda t: t.set(("a",), "leaf"))
    await store.write(lambda t: t.set(("a", "b"), 1))
    assert await store.read(lambda t: t.node(("a",))) == {"b": 1}


async def test_sibling_with_longer_name_is_not_part_of_a_subtree(store: Store) -> None:
    await store.write(lambda t: t.set(("a",), {"x": 1}))
    await store.write(lambda t: t.set(("a0",), 2))
    await store.write(lambda t: t.set(("a!",), 3))
    assert await store.read(lambda t: t.node(("a",))) == {"x": 1}
    await store.write(lambda t: t.set(("a",), None))
    assert await store.read(lambda t: t.node(())) == {"a0": 2, "a!": 3}


async def test_concurrent_writes_are_grouped_but_keep_their_own_results(store: Store) -> None:
    def failing(t: Txn) -> None:
        t.set(("bad",), 1)
        from rtdb.core.errors import InvalidData

        raise InvalidData("no")

    results = await asyncio.gather(
        *[store.write(lambda t, i=i: t.set(("k", str(i)), i)) for i in range(200)],
        store.write(failing),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Exception) for r in results) == 1
    node = await store.read(lambda t: t.node(("k",)))
    assert len(children(node)) == 200
    assert await store.read(lambda t: t.node(("bad",))) is None, "a failed op is rolled back to its savepoint"
    assert store.stats.largest_batch > 1


async def test_shallow_lists_child_keys_without_values(store: Store) -> None:
    await store.write(lambda t: t.set(("p",), normalize({"b": {"deep": 1}, "a": 2, "10": 3, "9": 4})))
    leaf, keys = await store.read(lambda t: t.child_keys(("p",)))
    assert leaf is None and keys == ["9", "10", "a", "b"]


@pytest.mark.parametrize("size", [4, 3000])  # a packed node, and one stored as a row per child
async def test_a_shallow_page_is_the_slice_of_the_whole_listing(store: Store, size: int) -> None:
    value = {str(i) if i % 3 else f"k{i}": {"v": i} for i in range(size)}  # integer keys sort first
    await store.write(lambda t: t.set(("p",), normalize(value)))
    _, everything = await store.read(lambda t: t.child_keys(("p",)))
    assert sorted(everything, key=key_order) == everything and len(everything) == size
    for after in (None, everything[0], everything[size // 2], everything[-1], "zz", "-1"):
        window = parse_shallow({"limitToFirst": "3"} | ({} if after is None else {"startAfter": f'"{after}"'}))
        leaf, page = await store.read(lambda t, w=window: t.child_keys(("p",), w))
        rest = everything if after is None else [k for k in everything if key_order(k) > key_order(after)]
        assert leaf is None and page == rest[:3], after


def _data(n: int, seed: int) -> dict:
    rnd = random.Random(seed)
    out = {}
    for i in range(n):
        kind = rnd.randrange(5)
        score = [None, True, rnd.randrange(20), f"s{rnd.randrange(10)}", {"x": 1}][kind]
        out[f"k{i}"] = {"score": score, "n": i} if score is not None else {"n": i}
    return out


SPECS = [
    QuerySpec("child", ("score",)),
    QuerySpec("child", ("score",), start=Bound(5), limit=3),
    QuerySpec("child", ("score",), end=Bound(10), limit=4, from_last=True),
    QuerySpec("child", ("score",), start=Bound(7, "k3"), end=Bound("s5")),
    QuerySpec("child", ("score",), start=Bound(True), end=Bound(True)),
    QuerySpec("key", start=Bound("k2"), end=Bound("k5")),
    QuerySpec("key", limit=5, from_last=True),
    QuerySpec("value", limit=3),
    QuerySpec("child", ("score",), start=Bound(7, inclusive=False), end=Bound(12, inclusive=False)),
    QuerySpec("child", ("score",), start=Bound(True, inclusive=False), limit=4),
]


@pytest.mark.parametrize("spec", SPECS, ids=[repr(s) for s in SPECS])
async def test_indexed_unindexed_and_in_memory_queries_agree(backend: Backend, spec: QuerySpec) -> None:
    data = normalize(_data(60, 7))
    s = backend.store("q")
    await s.open()
    try:
        await s.write(lambda t: t.set(("list",), data))
        expected = [k for k, _ in spec.apply(children(data))]
        unindexed = await s.read(lambda t: t.query_keys(("list",), spec, None))
        index = await s.write(lambda t: t.declare_index(("$any",), ("score",)))
        indexed = await s.read(lambda t: t.query_keys(("list",), spec, t.find_index(("list",), spec) and index))
        assert unindexed == expected
        assert indexed == expected
    finally:
        await s.close()


async def test_index_follows_writes_at_every_depth(backend: Backend) -> None:
    s = backend.store("i")
    await s.open()
    try:
        index = await s.write(lambda t: t.declare_index(("rooms", "$r", "msgs"), ("ts",)))
        spec = QuerySpec("child", ("ts",), limit=2, from_last=True)
        await s.write(lambda t: t.set(("rooms",), normalize({"a": {"msgs": {"m1": {"ts": 1}, "m2": {"ts": 5}}}})))
        await s.write(lambda t: t.set(("rooms", "a", "msgs", "m3"), normalize({"ts": 3})))
        await s.write(lambda t: t.set(("rooms", "a", "msgs", "m1", "ts"), 9))
        await s.write(lambda t: t.set(("rooms", "a", "msgs", "m2"), None))
        keys = await s.read(lambda t: t.query_keys(("rooms", "a", "msgs"), spec, index))
        assert keys == ["m3", "m1"]
        await s.write(lambda t: t.set(("rooms", "a"), None))
        assert await s.read(lambda t: t.query_keys(("rooms", "a", "msgs"), spec, index)) == []
    finally:
        await s.close()


async def test_committed_data_survives_reopening(backend: Backend) -> None:
    s = backend.store("d")
    await s.open()
    await s.write(lambda t: t.set(("a",), 1))
    seq = await s.write(lambda t: (t.next_seq(), t.seq)[1])
    await s.close()
    s2 = backend.store("d")
    await s2.open()
    try:
        assert await s2.read(lambda t: t.node(("a",))) == 1
        assert await s2.read(lambda t: t.committed_seq()) == seq
    finally:
        await s2.close()


async def test_shallow_node_for_rules_replaces_children_with_true(store: Store) -> None:
    await store.write(lambda t: t.set(("p",), normalize({"a": {"deep": 1}, "b": 2, ".priority": 5})))
    assert await store.read(lambda t: t.shallow(("p",))) == {"a": True, "b": True, ".priority": 5}
    assert await store.read(lambda t: t.shallow(("p", "b"))) == 2
    assert await store.read(lambda t: t.shallow(("missing",))) is None


async def test_close_commits_what_was_submitted_and_refuses_later_writes(backend: Backend) -> None:
    from rtdb.core.errors import Unavailable

    s = backend.store("c")
    await s.open()
    pending = [asyncio.ensure_future(s.write(lambda t, i=i: t.set(("k", str(i)), i))) for i in range(50)]
    await asyncio.sleep(0)
    await s.close()
    assert all(p.done() and p.exception() is None for p in pending)
    with pytest.raises(Unavailable):
        await s.write(lambda t: t.set(("late",), 1))
    s2 = backend.store("c")
    await s2.open()
    try:
        assert len(children(await s2.read(lambda t: t.node(("k",))))) == 50
    finally:
        await s2.close()


async def test_two_stores_on_one_file_continue_each_others_seq_and_indexes(backend: Backend) -> None:
    """`--workers`: each process has its own writer; the second sees what the first committed."""
    a = backend.store("shared")
    b = backend.store("shared")
    await a.open()
    await b.open()
    try:
        def write(path: tuple[str, ...], value: object) -> int:
            def op(t: Txn) -> int:
                t.set(path, normalize(value))
                return t.next_seq()
            return op  # type: ignore[return-value]

        assert await a.write(write(("x",), 1)) == 1
        await a.write(lambda t: t.declare_index(("users",), ("age",)))
        assert await b.write(write(("users", "u1"), {"age": 30})) == 2  # b's cached seq was 0
        assert await a.write(write(("users", "u2"), {"age": 20})) == 3
        spec = QuerySpec(order_by="child", child=("age",))

        def ordered(t: Txn) -> list[str]:
            (index,) = t.indexes
            return t.query_keys(("users",), spec, index)

        # b maintained the index a declared: both entries are there, in age order
        assert await b.read(ordered) == ["u2", "u1"]
    finally:
        await a.close()
        await b.close()


async def test_the_change_log_keeps_recent_commits_in_order(tmp_path: Path, store: Store) -> None:
    for seq in range(1, 6):
        await store.write(lambda t, seq=seq: t.log_change(seq, f"c{seq}".encode()))
    assert await store.read(lambda t: t.changes_after(2)) == [b"c3", b"c4", b"c5"]
    assert await store.read(lambda t: t.changes_after(4, limit=5)) == [b"c5"]


async def grouped(store: Store, fns: list) -> list:  # type: ignore[type-arg]
    """Run ``fns`` as one group: the writer is held on a first op until all are queued."""
    import threading

    started, gate = threading.Event(), threading.Event()

    def block(t: Txn) -> None:
        started.set()
        gate.wait(5)

    blocker = asyncio.ensure_future(store.write(block))
    assert await asyncio.to_thread(started.wait, 5), "the writer never ran the blocker"
    batches = store.stats.batches
    futures = [asyncio.ensure_future(store.write(fn)) for fn in fns]
    await asyncio.sleep(0)  # each write queues its op at its first step
    gate.set()
    await blocker
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert store.stats.batches == batches + 2, "the blocker's group, then one group of all"
    return results


async def test_a_group_runs_without_savepoints_unless_an_op_fails_after_writing(store: Store) -> None:
    from rtdb.core.errors import InvalidData, PermissionDenied

    def refused(t: Txn) -> None:
        raise PermissionDenied("Permission denied")  # before any row changes: nothing to undo

    def half_done(t: Txn) -> None:
        t.set(("half",), 1)
        raise InvalidData("no")

    results = await grouped(store, [
        *[lambda t, i=i: t.set(("a", str(i)), i) for i in range(20)],
        refused,
        *[lambda t, i=i: t.set(("b", str(i)), i) for i in range(20)],
    ])
    assert [type(r) for r in results].count(PermissionDenied) == 1
    assert store.stats.savepoint_retries == 0
    results = await grouped(store, [
        *[lambda t, i=i: t.set(("c", str(i)), i) for i in range(20)],
        half_done,
        lambda t: t.set(("d",), "after"),
    ])
    assert [type(r) for r in results].count(InvalidData) == 1
    assert store.stats.savepoint_retries == 1
    assert await store.read(lambda t: t.node(("half",))) is None
    assert len(children(await store.read(lambda t: t.node(("c",))))) == 20
    assert await store.read(lambda t: t.node(("d",))) == "after"


async def test_ancestors_known_to_a_group_are_rechecked_after_a_replace_or_a_rollback(store: Store) -> None:
    from rtdb.core.errors import InvalidData

    def fails_after_creating_parent(t: Txn) -> None:
        t.set(("p", "q", "r"), 1)  # creates the objects p and p/q
        raise InvalidData("no")

    await grouped(store, [
        lambda t: t.set(("x", "y"), 1, old=None),  # x is known to be an object
        lambda t: t.set(("x",), "leaf", old=t.node(("x",))),  # ...until it is replaced
        lambda t: t.set(("x", "z"), 2, old=None),  # x must become an object again
        fails_after_creating_parent,  # rolled back: p and p/q do not exist
        lambda t: t.set(("p", "q", "s"), 3, old=None),  # so they must be created again
    ])
    assert await store.read(lambda t: t.node(())) == {"x": {"z": 2}, "p": {"q": {"s": 3}}}
    assert await store.read(lambda t: t.node(("p", "q"))) == {"s": 3}


def test_many_processes_may_create_the_same_new_file_at_once(tmp_path: Path) -> None:
    """`--workers`: each worker opens a namespace's file the first time it is used; for a new
    namespace they race to create it (switching it to WAL takes an exclusive lock)."""
    import subprocess
    import sys
    import time

    script = (
        "import asyncio, sys, time\n"
        "from pathlib import Path\n"
        "from rtdb.storage.sqlite import SqliteStore\n"
        "async def main():\n"
        "    Path(sys.argv[3] + '-ready-' + sys.argv[2]).touch()\n"  # imported; waiting for the others
        "    while not Path(sys.argv[3]).exists():\n"  # all start together
        "        time.sleep(0.001)\n"
        "    s = SqliteStore(Path(sys.argv[1]))\n"
        "    await s.open()\n"
        "    await s.write(lambda t: t.set(('k', sys.argv[2]), 1))\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    for round_ in range(4):
        file, go = tmp_path / f"new-{round_}.sqlite", tmp_path / f"go-{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", script, str(file), str(i), str(go)], stderr=subprocess.PIPE)
                 for i in range(8)]
        deadline = time.monotonic() + 60
        while not all(Path(f"{go}-ready-{i}").exists() for i in range(8)):  # all imported and waiting
            assert all(p.poll() is None for p in procs), [p.communicate()[1].decode() for p in procs if p.poll()]
            assert time.monotonic() < deadline, "the processes did not get ready"
            time.sleep(0.005)
        go.touch()
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0] * 8, errors
        with sqlite3.connect(file) as conn:
            (blob,) = conn.execute("SELECT value FROM nodes WHERE parent = '' AND ksort = ?",
                                   (key_bytes("k"),)).fetchone()
            assert msgspec.json.decode(blob) == {str(i): 1 for i in range(8)}


async def test_a_group_logs_its_changes_as_one_row_and_a_failed_op_logs_nothing(store: Store) -> None:
    from rtdb.core.errors import InvalidData

    def logged(seq: int) -> Any:
        def op(t: Txn) -> None:
            t.set(("k", str(seq)), seq)
            t.log_change(seq, f"c{seq}".encode())
        return op

    def fails_after_logging(t: Txn) -> None:
        t.set(("bad",), 1)
        t.log_change(99, b"never")
        raise InvalidData("no")

    await grouped(store, [logged(1), logged(2), fails_after_logging, logged(3)])
    assert store.stats.savepoint_retries == 1
    assert await store.read(lambda t: t.changes_after(0)) == [b"c1", b"c2", b"c3"]
    await grouped(store, [logged(4), logged(5)])
    rows = await store.read(lambda t: t.conn.execute("SELECT count(*) FROM changelog").fetchone()[0])
    assert rows <= 4  # one per group (or per op in the group that ran with savepoints), not one per commit
    assert await store.read(lambda t: t.changes_after(3)) == [b"c4", b"c5"]
    assert await store.read(lambda t: t.changes_after(4)) == [b"c5"]


async def test_a_reader_finds_an_index_declared_after_it_opened(store: Store) -> None:
    spec = QuerySpec("child", ("age",))
    await store.write(lambda t: t.set(("users", "u1"), {"age": 3}))
    assert await store.read(lambda t: t.find_index(("users",), spec)) is None  # the reader connection opens
    declared = await store.write(lambda t: t.declare_index(("users",), ("age",)))
    for _ in range(4):  # whichever reader connection answers
        assert await store.read(lambda t: t.find_index(("users",), spec)) == declared


async def test_a_raw_read_encodes_to_the_same_json_as_a_decoded_one(store: Store) -> None:
    value = normalize({
        "plain": {f"c{i}": {"name": f"n{i}", "n": i, "ok": True, "deep": {"x": 1.5}} for i in range(50)},
        "rich": {"a": {".priority": 1, "b": 2}, "arr": {"0": "x", "1": "y"}},
        "flat": {f"k{i}": i for i in range(400)},
    })
    await store.write(lambda t: t.set(("root",), value))
    for path in [("root",), ("root", "plain"), ("root", "plain", "c7"), ("root", "rich"), ("root", "rich", "arr")]:
        for plain in (True, False):
            raw = await store.read(lambda t, path=path, plain=plain: t.node(path, plain=plain, raw=True))
            decoded = await store.read(lambda t, path=path, plain=plain: t.node(path, plain=plain))
            assert msgspec.json.decode(msgspec.json.encode(raw)) == decoded
    assert isinstance(await store.read(lambda t: t.node(("root", "plain", "c7"), plain=True, raw=True)), msgspec.Raw)


async def test_the_root_lists_queries_and_exports_its_children_only(store: Store) -> None:
    await store.write(lambda t: t.set((), normalize({"b": 2, "a": {"x": 1}, "c": "z"})))
    assert await store.read(lambda t: t.child_keys(())) == (None, ["a", "b", "c"])
    assert await store.read(lambda t: t.shallow(())) == {"a": True, "b": True, "c": True}
    assert await store.read(lambda t: t.query_keys((), QuerySpec(order_by="key", limit=2), None)) == ["a", "b"]
    assert await store.read(lambda t: t.query_keys((), QuerySpec(order_by="value"), None)) == ["b", "c", "a"]
    exported = await store.read(lambda t: "".join(t.export_chunks((), keep_priorities=False)))
    assert msgspec.json.decode(exported) == {"a": {"x": 1}, "b": 2, "c": "z"}


# -- the write connection's kept row chains (reuse within a write, a group's prefetch) --------

_KEYS = ("a", "b", "c", "1", "2")


def _random_path(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.choice(_KEYS) for _ in range(rng.randint(0, 4)))


def _random_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.25:
        return None
    if roll < 0.5:
        return rng.choice(["x", 7, 2.5, True, "y" * rng.randint(1, 40)])
    if roll < 0.8:  # small: packed where it lands
        return {rng.choice(_KEYS): rng.choice(["p", 1, {"q": "r"}]) for _ in range(rng.randint(1, 3))}
    # larger than a packed row: an object with rows of its own
    return {f"k{i:03d}": {"text": "z" * 30, "n": i} for i in range(PACK_MAX // 30)}


@pytest.mark.parametrize("seed", range(6))
async def test_kept_chains_never_go_stale_within_a_write(store: Store, seed: int) -> None:
    """Hundreds of writes in one transaction, each reusing the row chains the connection kept
    (and a prefetch of random paths now and then), agree with a model of the tree after each
    write, and the committed tree equals the model."""
    from rtdb.core.value import replace_at

    rng = random.Random(seed)
    model: Any = None

    def run(txn: Txn) -> None:
        nonlocal model
        for _ in range(150):
            if rng.random() < 0.3:
                txn.prefetch([_random_path(rng) for _ in range(rng.randint(2, 6))])
            path = _random_path(rng)
            value = normalize(_random_value(rng), path)
            txn.node(path)  # what a write command reads first: the chain is kept
            txn.set(path, value)
            model = replace_at(model, path, value)
            for probe in [path, path[:-1], _random_path(rng), _random_path(rng)]:
                assert txn.node(probe) == _at(model, probe), (seed, path, probe)

    await store.write(run)
    assert await store.read(lambda txn: txn.node(())) == model


def _at(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
