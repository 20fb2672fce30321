"""Memory of one large write in the storage layer (a real SQLite file in tmp_path)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import tracemalloc
import weakref
from pathlib import Path

import msgspec

from rtdb.core.value import normalize
from rtdb.storage.sqlite import SqliteStore
from rtdb.storage.txn import SCHEMA, Txn


def test_a_wide_write_does_not_hold_all_its_rows_at_once(tmp_path: Path) -> None:
    value = normalize({f"k{i:06d}": f"value {i:06d}" for i in range(60_000)})
    json_bytes = len(msgspec.json.encode(value))
    conn = sqlite3.connect(tmp_path / "ns.sqlite", isolation_level=None)
    conn.executescript(SCHEMA)
    txn = Txn(conn)
    conn.execute("BEGIN")
    tracemalloc.start()
    try:
        txn.set(("big",), value)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM nodes").fetchone()[0] == 60_002  # root, big, the leaves
    conn.close()
    # All 60,000 rows at once take about nine times the JSON (tuples, path strings, sort
    # keys). Made a statement's worth at a time, what remains is mostly the bounded cache
    # of key sort bytes.
    assert peak < 2 * json_bytes, (peak, json_bytes)


async def test_the_writer_thread_keeps_no_write_once_it_is_done(tmp_path: Path) -> None:
    """A write (and what it returns) is not held by the writer thread until the next one comes."""
    store = SqliteStore(tmp_path / "ns.sqlite", synchronous="NORMAL")
    await store.open()
    try:
        class Result:
            pass

        def write(txn: Txn) -> Result:
            txn.set(("k",), 1)
            return Result()

        result = weakref.ref(await store.write(write))
        for _ in range(500):  # the thread lets go just after it hands the result over
            gc.collect()
            if result() is None:
                break
            await asyncio.sleep(0.01)
        assert result() is None
    finally:
        await store.close()
