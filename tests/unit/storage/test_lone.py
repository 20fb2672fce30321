"""A lone write (rtdb.storage.lone.ALONE set by the transport) commits on the calling thread
when the writer thread is idle with nothing queued; otherwise it queues as any write does."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rtdb.core.value import normalize
from rtdb.storage.lone import ALONE
from rtdb.storage.space import SpacePolicy, file_bytes
from rtdb.storage.sqlite import SqliteStore
from rtdb.storage.txn import Txn


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "ns.sqlite", synchronous="NORMAL")
    await s.open()
    yield s
    await s.close()


ITEMS = {f"k{i:06d}": "x" * 400 for i in range(6_000)}  # ~2.6 MB of leaves


def writing(key: str, value: Any, seen: list[tuple[str, int]]) -> Any:
    def fn(txn: Txn) -> str:
        seen.append((key, threading.get_ident()))
        txn.set(("k", key), value)
        return key

    return fn


async def lone_write(store: SqliteStore, fn: Any) -> Any:
    token = ALONE.set(True)
    try:
        return await store.write(fn)
    finally:
        ALONE.reset(token)


async def test_a_lone_write_commits_on_the_calling_thread_and_is_published_before_it_returns(
    store: SqliteStore,
) -> None:
    seen: list[tuple[str, int]] = []
    published: list[list[Any]] = []
    store.on_commit = published.append
    assert await lone_write(store, writing("a", 1, seen)) == "a"
    assert seen == [("a", threading.get_ident())]
    assert published == [["a"]]
    assert await store.read(lambda t: t.node(("k",))) == {"a": 1}


async def test_without_alone_a_write_goes_to_the_writer_thread(store: SqliteStore) -> None:
    seen: list[tuple[str, int]] = []
    assert await store.write(writing("a", 1, seen)) == "a"
    assert seen[0][1] != threading.get_ident()


async def test_a_lone_write_queues_behind_a_write_not_finished_yet(store: SqliteStore) -> None:
    seen: list[tuple[str, int]] = []
    release = threading.Event()

    def slow(txn: Txn) -> str:
        release.wait(10)
        return writing("first", 1, seen)(txn)

    first = asyncio.ensure_future(store.write(slow))
    await asyncio.sleep(0.05)  # the writer thread is inside the first write's group
    second = asyncio.ensure_future(lone_write(store, writing("second", 2, seen)))
    await asyncio.sleep(0.05)
    assert not second.done()
    release.set()
    assert await asyncio.gather(first, second) == ["first", "second"]
    assert [key for key, _ in seen] == ["first", "second"]
    assert seen[1][1] != threading.get_ident()  # it went to the writer thread, after the first
    assert await lone_write(store, writing("third", 3, seen)) == "third"  # all finished: here again
    assert seen[2][1] == threading.get_ident()


async def test_a_failed_lone_write_leaves_no_trace_and_raises(store: SqliteStore) -> None:
    published: list[list[Any]] = []
    store.on_commit = published.append

    def failing(txn: Txn) -> None:
        txn.set(("k", "x"), 1)
        raise ValueError("no")

    with pytest.raises(ValueError):
        await lone_write(store, failing)
    assert published == []
    assert await store.read(lambda t: t.node(("k",))) is None
    assert await lone_write(store, writing("y", 2, [])) == "y"


async def test_lone_writes_still_let_the_writer_thread_give_space_back(tmp_path: Path) -> None:
    file = tmp_path / "ns.sqlite"
    store = SqliteStore(file, synchronous="NORMAL",
                        space=SpacePolicy(min_free_bytes=256 * 1024, idle_check_s=0.01, wal_truncate_bytes=1024 * 1024))
    await store.open()
    try:
        assert await lone_write(store, lambda t: t.set(("items",), normalize(ITEMS))) is None
        assert await lone_write(store, lambda t: t.set(("items",), None)) is None  # committed on this thread
        assert store.space is not None
        deadline = time.monotonic() + 30
        while file_bytes(file) > 200_000 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert file_bytes(file) <= 200_000, file_bytes(file)
        assert store.space.stats.pages_freed > 0
    finally:
        await store.close()


async def test_lone_writes_go_on_while_a_compaction_runs(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ns.sqlite", synchronous="NORMAL",
                        space=SpacePolicy(vacuum_free_percent=0, step_pages=8))
    await store.open()
    try:
        await lone_write(store, lambda t: t.set(("items",), normalize(ITEMS)))
        await lone_write(store, lambda t: t.set(("items",), None))
        compaction = asyncio.ensure_future(store.compact())
        seen: list[tuple[str, int]] = []
        for i in range(20):
            await lone_write(store, writing(str(i), i, seen))
        report = await compaction
        assert report.pages_freed > 0
        assert [key for key, _ in seen] == [str(i) for i in range(20)]
        assert await store.read(lambda t: t.node(("k", "19"))) == 19
    finally:
        await store.close()
