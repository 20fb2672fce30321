"""A lone write (rtdb.storage.lone.ALONE set by the transport) commits on the calling thread
when the writer thread is idle with nothing queued; otherwise it queues as any write does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rtdb.storage.lone import ALONE
from rtdb.storage.sqlite import SqliteStore
from rtdb.storage.txn import Txn


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "ns.sqlite", synchronous="NORMAL")
    await s.open()
    yield s
    await s.close()


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
